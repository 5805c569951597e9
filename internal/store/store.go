// Package store is Roost's built-in database: replicated tables (users,
// acl, banned, retained, api_keys, admins, config) kept in bbolt and
// replicated by hashicorp/raft. A single node is a one-voter raft cluster,
// so there is one write path for one node and for many.
package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	bolt "go.etcd.io/bbolt"
)

// Options configure Open.
type Options struct {
	Dir       string // the node's data dir: state in Dir/store.db, raft in Dir/raft/
	NodeID    string // raft server id: the node's id from node.json
	Advertise string // raft server address others dial (host:port)
	// Transport carries raft traffic. Nil: an in-memory transport, for a
	// node that is not clustered.
	Transport raft.Transport
	// Bootstrap makes a node without raft state a one-voter cluster.
	Bootstrap bool
	// Forward sends ops to the leader when this node is a follower.
	// Nil: writes on a follower fail with ErrNotLeader.
	Forward func(ctx context.Context, ops []Op) (*Result, error)
	Logger  *slog.Logger

	SnapshotThreshold uint64        // log entries between snapshots (default 8192)
	SnapshotInterval  time.Duration // how often to check the threshold (default 2m)
	TrailingLogs      uint64        // entries kept after a snapshot (default 10240)
	MaxBatchOps       int           // ops merged into one raft entry (default 4096)
}

// ErrNotLeader is returned by writes on a follower that cannot forward.
var ErrNotLeader = errors.New("store: this node is not the raft leader")

// ErrLeaderIsLocal is what a Forward function returns when it finds that
// this node is the leader after all: the store then commits locally.
var ErrLeaderIsLocal = errors.New("store: the leader is this node")

// ErrClosed is returned by writes after Close.
var ErrClosed = errors.New("store: closed")

// Result is what a committed Apply returns.
type Result struct {
	Index uint64   // raft index of the entry that carried the ops
	Keys  []string // per op, the key it touched (an OpAppend's generated key)
}

// Store is the replicated database of one node.
type Store struct {
	opts      Options
	log       *slog.Logger
	fsm       *fsm
	rmu       sync.RWMutex // guards raft, swapped by Reset
	raft      *raft.Raft
	resetMu   sync.Mutex
	logStore  *raftboltdb.BoltStore
	transport raft.Transport

	obsMu     sync.RWMutex
	observers []func([]Change)

	leaderChanges atomic.Uint64 // across Resets: a counter only grows

	submit chan *pending
	stop   chan struct{}
	wg     sync.WaitGroup
	closed sync.Once
}

type pending struct {
	ops     []Op
	ctx     context.Context
	done    func(*Result, error)
	forward bool // may be sent to the leader when this node is a follower
}

// Open opens (or creates) the store in opts.Dir and starts raft. It does
// not wait for a leader: see WaitLeader.
func Open(opts Options) (*Store, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.NodeID == "" || opts.Advertise == "" {
		return nil, errors.New("store: node id and advertise address are required")
	}
	if opts.SnapshotThreshold == 0 {
		opts.SnapshotThreshold = 8192
	}
	if opts.SnapshotInterval == 0 {
		opts.SnapshotInterval = 2 * time.Minute
	}
	if opts.TrailingLogs == 0 {
		opts.TrailingLogs = 10240
	}
	if opts.MaxBatchOps == 0 {
		opts.MaxBatchOps = 4096
	}
	s := &Store{opts: opts, log: opts.Logger.With("component", "store"),
		submit: make(chan *pending, 1024), stop: make(chan struct{})}

	raftDir := filepath.Join(opts.Dir, "raft")
	if err := os.MkdirAll(raftDir, 0o700); err != nil {
		return nil, fmt.Errorf("store: create %s: %w", raftDir, err)
	}
	f, err := newFSM(filepath.Join(opts.Dir, "store.db"), s.log, s.dispatch)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	s.fsm = f
	logStore, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(raftDir, "raft.db")})
	if err != nil {
		f.close()
		return nil, fmt.Errorf("store: open raft log %s: %w", filepath.Join(raftDir, "raft.db"), err)
	}
	s.logStore = logStore
	s.transport = opts.Transport
	if s.transport == nil {
		_, s.transport = raft.NewInmemTransport(raft.ServerAddress(opts.Advertise))
	}
	if err := s.startRaft(opts.Bootstrap); err != nil {
		s.closeFiles()
		return nil, err
	}
	s.wg.Add(1)
	go s.batchLoop()
	return s, nil
}

// startRaft starts raft on the open log store and FSM; bootstrap makes a
// node without raft state a one-voter cluster.
func (s *Store) startRaft(bootstrap bool) error {
	raftDir := filepath.Join(s.opts.Dir, "raft")
	hlog := NewRaftLogger(s.opts.Logger.With("component", "store.raft"))
	snaps, err := raft.NewFileSnapshotStoreWithLogger(raftDir, 2, hlog)
	if err != nil {
		return fmt.Errorf("store: open raft snapshots: %w", err)
	}
	conf := raft.DefaultConfig()
	conf.LocalID = raft.ServerID(s.opts.NodeID)
	conf.Logger = hlog
	conf.NoSnapshotRestoreOnStart = true // the bbolt state is already current
	conf.SnapshotThreshold = s.opts.SnapshotThreshold
	conf.SnapshotInterval = s.opts.SnapshotInterval
	conf.TrailingLogs = s.opts.TrailingLogs
	conf.HeartbeatTimeout = 500 * time.Millisecond
	conf.ElectionTimeout = 500 * time.Millisecond
	conf.LeaderLeaseTimeout = 250 * time.Millisecond
	conf.BatchApplyCh = true
	conf.MaxAppendEntries = 256

	if bootstrap {
		has, err := raft.HasExistingState(s.logStore, s.logStore, snaps)
		if err != nil {
			return fmt.Errorf("store: read raft state: %w", err)
		}
		if !has {
			cfg := raft.Configuration{Servers: []raft.Server{{
				Suffrage: raft.Voter, ID: conf.LocalID, Address: raft.ServerAddress(s.opts.Advertise)}}}
			if err := raft.BootstrapCluster(conf, s.logStore, s.logStore, snaps, keepOpenTransport{s.transport}, cfg); err != nil {
				return fmt.Errorf("store: bootstrap raft: %w", err)
			}
		}
	}
	r, err := raft.NewRaft(conf, s.fsm, s.logStore, s.logStore, snaps, keepOpenTransport{s.transport})
	if err != nil {
		return fmt.Errorf("store: start raft: %w", err)
	}
	s.observeLeaders(r)
	s.rmu.Lock()
	s.raft = r
	s.rmu.Unlock()
	return nil
}

// Reset throws away this node's raft state and every replicated record,
// and restarts raft empty: as a new one-voter cluster when bootstrap is
// set, or waiting to be added to an existing cluster (join). Observers get
// a reset change.
func (s *Store) Reset(bootstrap bool) error {
	s.resetMu.Lock()
	defer s.resetMu.Unlock()
	if err := s.r().Shutdown().Error(); err != nil {
		return fmt.Errorf("store: reset: raft shutdown: %w", err)
	}
	if err := s.logStore.Close(); err != nil {
		return fmt.Errorf("store: reset: close raft log: %w", err)
	}
	raftDir := filepath.Join(s.opts.Dir, "raft")
	if err := os.RemoveAll(raftDir); err != nil {
		return fmt.Errorf("store: reset: %w", err)
	}
	if err := os.MkdirAll(raftDir, 0o700); err != nil {
		return fmt.Errorf("store: reset: %w", err)
	}
	if err := s.fsm.wipe(); err != nil {
		return fmt.Errorf("store: reset: %w", err)
	}
	logStore, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(raftDir, "raft.db")})
	if err != nil {
		return fmt.Errorf("store: reset: open raft log: %w", err)
	}
	s.logStore = logStore
	return s.startRaft(bootstrap)
}

func (s *Store) r() *raft.Raft {
	s.rmu.RLock()
	defer s.rmu.RUnlock()
	return s.raft
}

func (s *Store) closeFiles() {
	if s.logStore != nil {
		s.logStore.Close()
	}
	s.fsm.close()
}

// Close stops raft and closes the files. Pending writes fail with ErrClosed.
func (s *Store) Close() error {
	var err error
	s.closed.Do(func() {
		close(s.stop)
		s.wg.Wait()
		if e := s.r().Shutdown().Error(); e != nil {
			err = fmt.Errorf("store: raft shutdown: %w", e)
		}
		if c, ok := s.transport.(interface{ Close() error }); ok {
			c.Close()
		}
		if e := s.logStore.Close(); e != nil && err == nil {
			err = fmt.Errorf("store: close raft log: %w", e)
		}
		if e := s.fsm.close(); e != nil && err == nil {
			err = fmt.Errorf("store: close state db: %w", e)
		}
	})
	return err
}

// Raft exposes the raft instance to the cluster layer (membership, status).
func (s *Store) Raft() *raft.Raft { return s.r() }

// WaitLeader blocks until the cluster has a leader, or ctx ends.
func (s *Store) WaitLeader(ctx context.Context) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		if addr, _ := s.r().LeaderWithID(); addr != "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("store: no raft leader: %w", ctx.Err())
		case <-t.C:
		}
	}
}

// Leader returns the raft address and id of the current leader ("" if none).
func (s *Store) Leader() (addr, id string) {
	a, i := s.r().LeaderWithID()
	return string(a), string(i)
}

// IsLeader reports whether this node is the raft leader.
func (s *Store) IsLeader() bool { return s.r().State() == raft.Leader }

// AppliedIndex is the raft index of the last entry in the local state.
func (s *Store) AppliedIndex() uint64 {
	i, _ := s.fsm.applied()
	return i
}

// OnChange registers fn to be called, on the raft apply goroutine, after
// each commit with the changes it made. fn must be quick and must not
// write to the store.
func (s *Store) OnChange(fn func([]Change)) {
	s.obsMu.Lock()
	s.observers = append(s.observers, fn)
	s.obsMu.Unlock()
}

func (s *Store) dispatch(ch []Change) {
	s.obsMu.RLock()
	obs := s.observers
	s.obsMu.RUnlock()
	for _, fn := range obs {
		fn(ch)
	}
}

// Apply commits ops through raft and returns once they are applied on
// this node (the leader) — or, on a follower, forwards them to the leader.
func (s *Store) Apply(ctx context.Context, ops ...Op) (*Result, error) {
	type out struct {
		r   *Result
		err error
	}
	ch := make(chan out, 1)
	s.ApplyAsync(ctx, ops, func(r *Result, err error) { ch <- out{r, err} })
	select {
	case o := <-ch:
		return o.r, o.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// ApplyAsync is Apply without waiting: done is called once the ops are
// committed or have failed. Concurrent calls are merged into shared raft
// entries, so many small writes cost one log write and one transaction.
func (s *Store) ApplyAsync(ctx context.Context, ops []Op, done func(*Result, error)) {
	s.applyAsync(ctx, ops, true, done)
}

// ApplyHere commits ops only if this node is the leader, never forwarding:
// for the leader's side of a forwarded write.
func (s *Store) ApplyHere(ctx context.Context, ops ...Op) (*Result, error) {
	type out struct {
		r   *Result
		err error
	}
	ch := make(chan out, 1)
	s.applyAsync(ctx, ops, false, func(r *Result, err error) { ch <- out{r, err} })
	select {
	case o := <-ch:
		return o.r, o.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (s *Store) applyAsync(ctx context.Context, ops []Op, forward bool, done func(*Result, error)) {
	if len(ops) == 0 {
		done(&Result{}, nil)
		return
	}
	if err := validateOps(ops); err != nil {
		done(nil, err)
		return
	}
	if !forward && !s.IsLeader() {
		done(nil, ErrNotLeader)
		return
	}
	// Leader or not, every write goes through the one queue: the batch
	// loop commits or forwards in submission order, so two writes to the
	// same key from this node land in the order they were made.
	select {
	case s.submit <- &pending{ops: ops, ctx: ctx, done: done, forward: forward}:
	case <-s.stop:
		done(nil, ErrClosed)
	case <-ctx.Done():
		done(nil, ctx.Err())
	}
}

// batchLoop merges queued writes into raft entries. It does not wait for
// one entry to commit before sending the next: raft pipelines them and
// the FSM applies a run of entries in one transaction.
func (s *Store) batchLoop() {
	defer s.wg.Done()
	for {
		var first *pending
		select {
		case first = <-s.submit:
		case <-s.stop:
			s.failQueued()
			return
		}
		batch := []*pending{first}
		nops := len(first.ops)
	drain:
		for nops < s.opts.MaxBatchOps {
			select {
			case p := <-s.submit:
				batch = append(batch, p)
				nops += len(p.ops)
			default:
				break drain
			}
		}
		s.send(batch, nops)
	}
}

func (s *Store) failQueued() {
	for {
		select {
		case p := <-s.submit:
			p.done(nil, ErrClosed)
		default:
			return
		}
	}
}

func (s *Store) send(batch []*pending, nops int) {
	live := batch[:0]
	for _, p := range batch {
		if err := p.ctx.Err(); err != nil {
			p.done(nil, err)
			continue
		}
		live = append(live, p)
	}
	if len(live) == 0 {
		return
	}
	if !s.IsLeader() {
		s.forward(live)
		return
	}
	all := make([]Op, 0, nops)
	for _, p := range live {
		all = append(all, p.ops...)
	}
	fut := s.r().Apply(encodeOps(all), 30*time.Second)
	go func() {
		err := fut.Error()
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
			err = fmt.Errorf("%w (%v)", ErrNotLeader, err)
		}
		var res applyResult
		if err == nil {
			res, _ = fut.Response().(applyResult)
			err = res.err
		}
		off := 0
		for _, p := range live {
			if err != nil {
				p.done(nil, fmt.Errorf("store: commit: %w", err))
				continue
			}
			r := &Result{Index: fut.Index()}
			if len(res.keys) >= off+len(p.ops) {
				r.Keys = res.keys[off : off+len(p.ops)]
			}
			off += len(p.ops)
			p.done(r, nil)
		}
	}()
}

// forward sends a batch of writes to the leader in one call, in order,
// waiting for the answer so that the next batch cannot overtake it.
func (s *Store) forward(batch []*pending) {
	var fwd []*pending
	var ops []Op
	for _, p := range batch {
		if !p.forward || s.opts.Forward == nil {
			p.done(nil, ErrNotLeader)
			continue
		}
		fwd = append(fwd, p)
		ops = append(ops, p.ops...)
	}
	if len(fwd) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := s.opts.Forward(ctx, ops)
	if errors.Is(err, ErrLeaderIsLocal) && s.IsLeader() {
		s.send(fwd, len(ops))
		return
	}
	off := 0
	for _, p := range fwd {
		if err != nil {
			p.done(nil, err)
			continue
		}
		r := &Result{Index: res.Index}
		if len(res.Keys) >= off+len(p.ops) {
			r.Keys = res.Keys[off : off+len(p.ops)]
		}
		off += len(p.ops)
		p.done(r, nil)
	}
}

// validateOps refuses, before anything is sent, ops the state machine
// could not apply: a replica that cannot apply a committed entry must
// stop, so bad input has to be stopped here.
func validateOps(ops []Op) error {
	for i, op := range ops {
		if isStageOp(op.Type) {
			if err := validateStageOp(op); err != nil {
				return fmt.Errorf("store: op %d: %w", i, err)
			}
			continue
		}
		if !knownTable(op.Table) {
			return fmt.Errorf("store: op %d: unknown table %q", i, op.Table)
		}
		switch op.Type {
		case OpPut, OpDelete:
			if op.Key == "" {
				return fmt.Errorf("store: op %d: empty key in table %s", i, op.Table)
			}
			if len(op.Key) > bolt.MaxKeySize {
				return fmt.Errorf("store: op %d: key in table %s is %d bytes, more than the %d allowed", i, op.Table, len(op.Key), bolt.MaxKeySize)
			}
		case OpAppend, OpClear:
		default:
			return fmt.Errorf("store: op %d: unknown op type %d", i, op.Type)
		}
		if len(op.Value) > maxValueSize {
			return fmt.Errorf("store: op %d: value for %s/%s is %d bytes, more than the %d allowed", i, op.Table, op.Key, len(op.Value), maxValueSize)
		}
	}
	return nil
}

// maxValueSize bounds one record; far below bbolt's limit, far above any
// real record (a retained message is at most one MQTT packet).
const maxValueSize = 64 << 20

func knownTable(t string) bool {
	if t == TableMembers {
		return true
	}
	for _, n := range Tables {
		if n == t {
			return true
		}
	}
	return false
}

// Barrier waits until every entry committed before the call is applied
// locally: a linearizable read point when called on the leader.
func (s *Store) Barrier(ctx context.Context) (uint64, error) {
	timeout := 30 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	if err := s.r().Barrier(timeout).Error(); err != nil {
		return 0, fmt.Errorf("store: barrier: %w", err)
	}
	return s.AppliedIndex(), nil
}

// Snapshot asks raft for a snapshot now (and log truncation).
func (s *Store) Snapshot() error {
	if err := s.r().Snapshot().Error(); err != nil {
		return fmt.Errorf("store: snapshot: %w", err)
	}
	return nil
}

// keepOpenTransport hides the transport's Close from raft, whose shutdown
// would otherwise close it: Reset restarts raft on the same transport.
// The store closes the real transport itself in Close.
type keepOpenTransport struct{ raft.Transport }

// RequestPreVote passes pre-vote through when the transport has it.
func (t keepOpenTransport) RequestPreVote(id raft.ServerID, target raft.ServerAddress, args *raft.RequestPreVoteRequest, resp *raft.RequestPreVoteResponse) error {
	if pv, ok := t.Transport.(raft.WithPreVote); ok {
		return pv.RequestPreVote(id, target, args, resp)
	}
	return errors.New("transport does not support pre-vote")
}
