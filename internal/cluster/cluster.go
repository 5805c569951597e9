package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/rpc"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"github.com/roostmq/roost/internal/config"
	"github.com/roostmq/roost/internal/store"
)

// Options configure a node's cluster membership.
type Options struct {
	Transport *Transport
	NodeID    string
	NodeName  string
	Version   string
	// ClusterID returns the cluster id in node.json; SetClusterID
	// persists a new one when this node joins another cluster.
	ClusterID    func() string
	SetClusterID func(string) error
	// IgnoredAdmin is the admin that every node creates on first start;
	// a node holding only it still counts as empty and may join.
	IgnoredAdmin string
	Seeds        []string
	Logger       *slog.Logger
}

// Cluster is one node's view of and part in the cluster.
type Cluster struct {
	opts      Options
	log       *slog.Logger
	st        *store.Store
	rpcServer *rpc.Server
	clients   *rpcClients
	router    atomic.Pointer[router] // nil until AttachBroker

	joinMu sync.Mutex // one join/leave at a time
	stop   chan struct{}
	wg     sync.WaitGroup
}

// New prepares the cluster layer; Start binds it to the store.
func New(opts Options) *Cluster {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	c := &Cluster{opts: opts, log: opts.Logger.With("component", "cluster"),
		clients: &rpcClients{t: opts.Transport, m: map[string]*rpc.Client{}}, stop: make(chan struct{})}
	c.rpcServer = rpc.NewServer()
	if err := c.rpcServer.RegisterName(rpcName, &rpcService{c: c}); err != nil {
		panic(err) // a programming error: the service's method set is fixed
	}
	return c
}

// Start serves control calls, records this node as a member, and (with
// seeds) forms or joins the cluster in the background.
func (c *Cluster) Start(ctx context.Context, st *store.Store) {
	c.st = st
	c.opts.Transport.Handle(StreamRPC, c.serveRPC)
	c.wg.Add(1)
	go c.maintain()
}

// Close stops background work and drops peer connections.
func (c *Cluster) Close() {
	select {
	case <-c.stop:
	default:
		close(c.stop)
	}
	if r := c.router.Load(); r != nil {
		r.closeLinks()
	}
	c.wg.Wait()
	c.clients.closeAll()
}

// ForwardApply sends ops to the leader: the store's Forward hook.
func (c *Cluster) ForwardApply(ctx context.Context, ops []store.Op) (*store.Result, error) {
	var lastErr error
	for attempt := 0; attempt < 20; attempt++ {
		addr, _ := c.st.Leader()
		if addr == "" {
			lastErr = errors.New("no leader elected")
		} else if addr == c.opts.Transport.Advertise() {
			// This node became the leader meanwhile: the store commits
			// the ops itself (calling ApplyHere from here would wait on
			// the store's own queue).
			return nil, store.ErrLeaderIsLocal
		} else {
			var reply ApplyReply
			err := c.clients.call(ctx, addr, "Apply", ApplyArgs{ClusterID: c.opts.ClusterID(), Ops: ops}, &reply)
			if err == nil {
				return &store.Result{Index: reply.Index, Keys: reply.Keys}, nil
			}
			lastErr = err
			if !errors.Is(err, store.ErrNotLeader) && ctx.Err() != nil {
				break
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("cluster: forward write to leader: %w (last error: %v)", ctx.Err(), lastErr)
		case <-time.After(time.Duration(50*(attempt+1)) * time.Millisecond):
		}
	}
	return nil, fmt.Errorf("cluster: forward write to leader: %v", lastErr)
}

// maintain keeps this node's member record current and, with seeds,
// forms or joins the cluster.
func (c *Cluster) maintain() {
	defer c.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		if c.st.IsLeader() {
			c.recordMembers()
		}
		if len(c.opts.Seeds) > 0 {
			c.trySeeds()
		}
		if r := c.router.Load(); r != nil {
			r.reconcile()
		}
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
	}
}

// recordMembers writes a member record for every voter that lacks one
// (the bootstrap node records itself this way).
func (c *Cluster) recordMembers() {
	cfg := c.st.Raft().GetConfiguration()
	if cfg.Error() != nil {
		return
	}
	var ops []store.Op
	c.st.View(func(tx *store.Tx) error {
		for _, srv := range cfg.Configuration().Servers {
			if tx.Get(store.TableMembers, string(srv.ID)) != nil {
				continue
			}
			m := store.Member{V: store.RecordVersion, NodeID: string(srv.ID), Address: string(srv.Address), JoinedAt: time.Now().UTC()}
			if string(srv.ID) == c.opts.NodeID {
				m.Name = c.opts.NodeName
			}
			op, err := store.Put(store.TableMembers, m.NodeID, m)
			if err == nil {
				ops = append(ops, op)
			}
		}
		return nil
	})
	if len(ops) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := c.st.ApplyHere(ctx, ops...); err != nil {
			c.log.Debug("record members", "err", err)
		}
	}
}

func (c *Cluster) voters() []raft.Server {
	f := c.st.Raft().GetConfiguration()
	if f.Error() != nil {
		return nil
	}
	return f.Configuration().Servers
}

// localInfo describes this node for Info calls and status.
func (c *Cluster) localInfo() NodeInfo {
	r := c.st.Raft()
	leader, _ := c.st.Leader()
	info := NodeInfo{Name: c.opts.NodeName, NodeID: c.opts.NodeID, ClusterID: c.opts.ClusterID(),
		Version: c.opts.Version, Address: c.opts.Transport.Advertise(), RaftState: r.State().String(),
		Leader: leader, Voters: len(c.voters()), AppliedIndex: c.st.AppliedIndex(), Empty: c.isEmpty()}
	if r.State() != raft.Leader {
		info.LastContact = time.Since(r.LastContact())
	}
	return info
}

// isEmpty reports whether this node holds no replicated data that a join
// would throw away: every table empty but for the initial admin.
func (c *Cluster) isEmpty() bool {
	empty := true
	c.st.View(func(tx *store.Tx) error {
		for _, t := range store.Tables {
			n := tx.Count(t)
			if t == store.TableAdmins && n == 1 && tx.Get(t, c.opts.IgnoredAdmin) != nil {
				continue
			}
			if n > 0 {
				empty = false
			}
		}
		return nil
	})
	return empty
}

// Join makes this node a member of the cluster that the node at addr
// belongs to. This node must hold no replicated data: its state is
// replaced by the cluster's.
func (c *Cluster) Join(ctx context.Context, addr string) error {
	c.joinMu.Lock()
	defer c.joinMu.Unlock()
	if addr == c.opts.Transport.Advertise() {
		return errors.New("cannot join: that address is this node")
	}
	if len(c.voters()) > 1 {
		return fmt.Errorf("cannot join: this node is already in a cluster of %d nodes; run `roost ctl cluster leave` first", len(c.voters()))
	}
	if !c.isEmpty() {
		return errors.New("cannot join: this node holds replicated data (users, ACL rules, bans, retained messages, API keys, admins or config) that joining would discard; export it with `roost ctl data export`, or start this node with an empty data dir")
	}
	var seed NodeInfo
	if err := c.clients.call(ctx, addr, "Info", struct{}{}, &seed); err != nil {
		return fmt.Errorf("cannot join %s: %w", addr, err)
	}
	if seed.NodeID == c.opts.NodeID {
		return errors.New("cannot join: that address is this node")
	}
	leader := seed.Leader
	if leader == "" {
		return fmt.Errorf("cannot join %s: that cluster has no leader right now; try again", addr)
	}
	if seed.ClusterID == "" {
		return fmt.Errorf("cannot join %s: it did not say which cluster it is in", addr)
	}
	c.log.Info("joining cluster", "via", addr, "leader", leader, "cluster_id", seed.ClusterID)

	// Become an empty raft member first: a node that kept its own log
	// would diverge from the cluster's.
	if err := c.st.Reset(false); err != nil {
		return fmt.Errorf("join: reset local state: %w", err)
	}
	// Take the cluster's id before asking to be added: the transport
	// refuses raft streams between nodes whose cluster ids differ, and the
	// leader replicates to this node (and needs its answer to commit the
	// new configuration) as soon as it adds it as a voter.
	ownCluster := c.opts.ClusterID()
	undo := func(why error) error {
		// Back to a standalone node (it was empty anyway) in its own
		// cluster.
		if rerr := c.st.Reset(true); rerr != nil {
			c.log.Error("join failed and the node could not re-form its own cluster", "err", rerr)
		}
		if ierr := c.opts.SetClusterID(ownCluster); ierr != nil {
			c.log.Error("join failed and the node could not restore its own cluster id", "cluster_id", ownCluster, "err", ierr)
		}
		return why
	}
	if err := c.opts.SetClusterID(seed.ClusterID); err != nil {
		return undo(fmt.Errorf("join: record cluster id: %w", err))
	}
	var reply JoinReply
	args := JoinArgs{NodeID: c.opts.NodeID, Name: c.opts.NodeName, Address: c.opts.Transport.Advertise(), ClusterID: seed.ClusterID}
	if err := c.callLeader(ctx, leader, "Join", args, &reply); err != nil {
		return undo(fmt.Errorf("join %s: %w", addr, err))
	}
	if reply.ClusterID != seed.ClusterID {
		// The leader checks JoinArgs.ClusterID, so this is not expected;
		// follow the leader if it happens.
		c.log.Warn("join: the leader answered with another cluster id", "expected", seed.ClusterID, "leader_cluster_id", reply.ClusterID)
		if err := c.opts.SetClusterID(reply.ClusterID); err != nil {
			return fmt.Errorf("join: record cluster id: %w", err)
		}
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := c.st.WaitLeader(wctx); err != nil {
		return fmt.Errorf("joined, but no leader seen yet: %w", err)
	}
	c.log.Info("joined cluster", "cluster_id", reply.ClusterID, "leader", reply.Leader)
	return nil
}

// callLeader calls method on the leader, following "not leader" answers.
func (c *Cluster) callLeader(ctx context.Context, leader, method string, args, reply any) error {
	var err error
	for attempt := 0; attempt < 10; attempt++ {
		err = c.clients.call(ctx, leader, method, args, reply)
		if !errors.Is(err, store.ErrNotLeader) {
			return err
		}
		var info NodeInfo
		if e := c.clients.call(ctx, leader, "Info", struct{}{}, &info); e == nil && info.Leader != "" {
			leader = info.Leader
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return err
}

// addVoter is the leader's side of Join.
func (c *Cluster) addVoter(ctx context.Context, args JoinArgs, reply *JoinReply) error {
	if !c.st.IsLeader() {
		return errors.New(errNotLeaderPrefix)
	}
	if local := c.opts.ClusterID(); args.ClusterID != local {
		return fmt.Errorf("cannot add %s: it asked to join cluster %s, but this cluster is %s (it changed meanwhile?); run the join again",
			args.Address, quoteID(args.ClusterID), quoteID(local))
	}
	r := c.st.Raft()
	for _, s := range c.voters() {
		if string(s.ID) == args.NodeID && string(s.Address) == args.Address {
			reply.ClusterID, reply.Leader = c.opts.ClusterID(), c.opts.Transport.Advertise()
			return nil // already a member: joining again is a no-op
		}
		if string(s.Address) == args.Address && string(s.ID) != args.NodeID {
			// The same address with a new id: the node was wiped. Replace it.
			if err := r.RemoveServer(s.ID, 0, 10*time.Second).Error(); err != nil {
				return fmt.Errorf("remove stale member %s: %w", s.ID, err)
			}
		}
	}
	if err := r.AddVoter(raft.ServerID(args.NodeID), raft.ServerAddress(args.Address), 0, 20*time.Second).Error(); err != nil {
		return fmt.Errorf("add voter: %w", err)
	}
	m := store.Member{V: store.RecordVersion, NodeID: args.NodeID, Name: args.Name, Address: args.Address, JoinedAt: time.Now().UTC()}
	op, err := store.Put(store.TableMembers, m.NodeID, m)
	if err != nil {
		return err
	}
	if _, err := c.st.ApplyHere(ctx, op); err != nil {
		return fmt.Errorf("record member: %w", err)
	}
	c.log.Info("node joined", "name", args.Name, "node_id", args.NodeID, "address", args.Address)
	reply.ClusterID, reply.Leader = c.opts.ClusterID(), c.opts.Transport.Advertise()
	return nil
}

// removeServer is the leader's side of leave and force-leave.
func (c *Cluster) removeServer(ctx context.Context, nodeID string) error {
	if !c.st.IsLeader() {
		return errors.New(errNotLeaderPrefix)
	}
	if err := c.st.Raft().RemoveServer(raft.ServerID(nodeID), 0, 20*time.Second).Error(); err != nil {
		return fmt.Errorf("remove %s: %w", nodeID, err)
	}
	if nodeID != c.opts.NodeID {
		if _, err := c.st.ApplyHere(ctx, store.Delete(store.TableMembers, nodeID)); err != nil {
			return fmt.Errorf("forget member %s: %w", nodeID, err)
		}
	}
	return nil
}

// Leave removes this node from its cluster. Like EMQX, a node that leaves
// starts over as an empty single-node cluster: its copy of the cluster's
// data is discarded (the cluster keeps it).
func (c *Cluster) Leave(ctx context.Context) error {
	c.joinMu.Lock()
	defer c.joinMu.Unlock()
	if len(c.voters()) <= 1 {
		return errors.New("cannot leave: this node is not in a cluster with other nodes")
	}
	if c.st.IsLeader() {
		// Hand leadership over first so the removal is committed by a
		// node that stays.
		if err := c.st.Raft().LeadershipTransfer().Error(); err != nil {
			return fmt.Errorf("leave: transfer leadership: %w", err)
		}
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := c.waitOtherLeader(wctx)
		cancel()
		if err != nil {
			return fmt.Errorf("leave: %w", err)
		}
	}
	leader, _ := c.st.Leader()
	if err := c.callLeader(ctx, leader, "Remove", RemoveArgs{ClusterID: c.opts.ClusterID(), NodeID: c.opts.NodeID}, &struct{}{}); err != nil {
		return fmt.Errorf("leave: %w", err)
	}
	if err := c.st.Reset(true); err != nil {
		return fmt.Errorf("leave: reset local state: %w", err)
	}
	id, err := config.NewID()
	if err != nil {
		return err
	}
	if err := c.opts.SetClusterID(id); err != nil {
		return err
	}
	c.log.Info("left the cluster; this node is now a new single-node cluster", "cluster_id", id)
	return nil
}

func (c *Cluster) waitOtherLeader(ctx context.Context) error {
	for {
		if addr, id := c.st.Leader(); addr != "" && id != c.opts.NodeID {
			return nil
		}
		select {
		case <-ctx.Done():
			return errors.New("no other node took over leadership")
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// ForceLeave removes another node, by name or node id, without its help:
// for a node that is dead and will not come back.
func (c *Cluster) ForceLeave(ctx context.Context, node string) error {
	id, err := c.resolveNode(node)
	if err != nil {
		return err
	}
	if id == c.opts.NodeID {
		return errors.New("force-leave removes another node; to remove this one use `roost ctl cluster leave`")
	}
	leader, _ := c.st.Leader()
	if leader == "" {
		return errors.New("force-leave: no leader: a majority of the nodes must be up")
	}
	return c.callLeader(ctx, leader, "Remove", RemoveArgs{ClusterID: c.opts.ClusterID(), NodeID: id}, &struct{}{})
}

func (c *Cluster) resolveNode(node string) (string, error) {
	members, _ := c.members()
	for _, s := range c.voters() {
		if string(s.ID) == node || string(s.Address) == node || members[string(s.ID)].Name == node {
			return string(s.ID), nil
		}
	}
	return "", fmt.Errorf("no cluster member is called %q (see `roost ctl cluster status`)", node)
}

func (c *Cluster) members() (map[string]store.Member, error) {
	out := map[string]store.Member{}
	err := c.st.View(func(tx *store.Tx) error {
		ms, err := store.List[store.Member](tx, store.TableMembers)
		for _, m := range ms {
			out[m.NodeID] = m
		}
		return err
	})
	return out, err
}

// MemberStatus is one line of `roost ctl cluster status`.
type MemberStatus struct {
	Name         string `json:"name"`
	NodeID       string `json:"node_id"`
	Address      string `json:"address"`
	Role         string `json:"role"` // leader | follower | candidate | unknown
	Healthy      bool   `json:"healthy"`
	LastContact  string `json:"last_contact"` // since the node last heard from the leader
	AppliedIndex uint64 `json:"applied_index"`
	Version      string `json:"version,omitempty"`
	Error        string `json:"error,omitempty"`
}

// Status asks every member about itself.
func (c *Cluster) Status(ctx context.Context) []MemberStatus {
	members, _ := c.members()
	servers := c.voters()
	out := make([]MemberStatus, len(servers))
	var wg sync.WaitGroup
	for i, s := range servers {
		out[i] = MemberStatus{Name: members[string(s.ID)].Name, NodeID: string(s.ID), Address: string(s.Address), Role: "unknown"}
		wg.Add(1)
		go func(ms *MemberStatus) {
			defer wg.Done()
			var info NodeInfo
			if ms.NodeID == c.opts.NodeID {
				info = c.localInfo()
			} else {
				cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				defer cancel()
				if err := c.clients.call(cctx, ms.Address, "Info", struct{}{}, &info); err != nil {
					ms.Error = err.Error()
					return
				}
				if local := c.opts.ClusterID(); info.ClusterID != local {
					// Whoever answers at that address is in another
					// cluster (restored with --force-new-cluster, or a
					// node of another cluster at a member's address): not
					// a member of this one, whatever it says about itself.
					ms.Name, ms.Version = info.Name, info.Version
					ms.Error = fmt.Sprintf("the node at %s (%s, node id %s) is in cluster %s, not this cluster %s: "+
						"restored with --force-new-cluster, or a node of another cluster? This cluster's raft traffic to it is refused; "+
						"if it is not coming back to this cluster, remove it with `roost ctl cluster force-leave %s`",
						ms.Address, info.Name, info.NodeID, quoteID(info.ClusterID), quoteID(local), ms.NodeID)
					return
				}
			}
			ms.Name, ms.Version, ms.AppliedIndex = info.Name, info.Version, info.AppliedIndex
			switch info.RaftState {
			case "Leader":
				ms.Role, ms.LastContact = "leader", "0s"
			case "Follower":
				ms.Role = "follower"
				ms.LastContact = info.LastContact.Round(time.Millisecond).String()
			default:
				ms.Role = lower(info.RaftState)
				ms.LastContact = info.LastContact.Round(time.Millisecond).String()
			}
			ms.Healthy = info.Leader != "" && (ms.Role == "leader" || info.LastContact < 5*time.Second)
		}(&out[i])
	}
	wg.Wait()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func lower(s string) string {
	b := []byte(s)
	for i, ch := range b {
		if 'A' <= ch && ch <= 'Z' {
			b[i] = ch + 'a' - 'A'
		}
	}
	return string(b)
}

// trySeeds forms or joins the cluster named by cluster.seeds. Exactly one
// node forms it: among the reachable empty standalone nodes, the one with
// the smallest name; everyone else joins whichever seed is already in a
// cluster or holds data, or that smallest node. A node already clustered
// or holding data of its own does nothing, so restarts are no-ops.
func (c *Cluster) trySeeds() {
	if len(c.voters()) > 1 || !c.isEmpty() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var target string
	smallest := c.opts.NodeName
	var smallestAddr string
	for _, seed := range c.opts.Seeds {
		if seed == c.opts.Transport.Advertise() {
			continue
		}
		var info NodeInfo
		if err := c.clients.call(ctx, seed, "Info", struct{}{}, &info); err != nil {
			continue
		}
		if info.NodeID == c.opts.NodeID {
			continue
		}
		if info.Voters > 1 || !info.Empty {
			target = seed
			break
		}
		if info.Name < smallest {
			smallest, smallestAddr = info.Name, seed
		}
	}
	if target == "" {
		target = smallestAddr
	}
	if target == "" {
		return // this node forms the cluster; the others will join it
	}
	if err := c.Join(ctx, target); err != nil {
		c.log.Warn("cluster.seeds: join failed; will retry", "seed", target, "err", err)
	}
}
