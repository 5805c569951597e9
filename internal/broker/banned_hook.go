package broker

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/roostmq/roost/internal/store"
)

// ParsePeerhost parses the value of a peerhost ban: a single IP address
// (v4 or v6) or a CIDR. A single address is returned as a full-length
// prefix.
func ParsePeerhost(v string) (netip.Prefix, error) {
	if strings.Contains(v, "/") {
		p, err := netip.ParsePrefix(v)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("peerhost %q is not an IP address or CIDR: %w", v, err)
		}
		return netip.PrefixFrom(p.Addr().Unmap(), unmappedBits(p)).Masked(), nil
	}
	a, err := netip.ParseAddr(v)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("peerhost %q is not an IP address or CIDR: %w", v, err)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func unmappedBits(p netip.Prefix) int {
	if p.Addr().Is4In6() {
		return max(p.Bits()-96, 0)
	}
	return p.Bits()
}

// banIndex is an immutable lookup structure over the bans.
type banIndex struct {
	clientID map[string]*store.Ban
	username map[string]*store.Ban
	host     map[netip.Addr]*store.Ban
	nets     []netBan
	expiring int // bans with an expiry, for the cleaner
}

type netBan struct {
	prefix netip.Prefix
	ban    *store.Ban
}

// banSet mirrors the banned table.
type banSet struct {
	log   *slog.Logger
	byKey map[string]*store.Ban // guarded by the mirror
	index atomic.Pointer[banIndex]
	// added is called (under the mirror's lock) for bans put by a commit.
	added func([]*store.Ban)
}

func newBanSet(log *slog.Logger) *banSet {
	b := &banSet{log: log, byKey: map[string]*store.Ban{}}
	b.publish()
	return b
}

func (b *banSet) publish() {
	ix := &banIndex{clientID: map[string]*store.Ban{}, username: map[string]*store.Ban{},
		host: map[netip.Addr]*store.Ban{}}
	for key, ban := range b.byKey {
		if !ban.Until.IsZero() {
			ix.expiring++
		}
		switch ban.Kind {
		case store.KindClientID:
			ix.clientID[ban.Value] = ban
		case store.KindUsername:
			ix.username[ban.Value] = ban
		case store.KindPeerhost:
			p, err := ParsePeerhost(ban.Value)
			if err != nil {
				b.log.Warn("ignoring ban with a bad peerhost", "key", key, "err", err)
				continue
			}
			if p.IsSingleIP() {
				ix.host[p.Addr()] = ban
			} else {
				ix.nets = append(ix.nets, netBan{prefix: p, ban: ban})
			}
		default:
			b.log.Warn("ignoring ban of unknown kind", "key", key, "kind", ban.Kind)
		}
	}
	b.index.Store(ix)
}

func (b *banSet) decode(key string, val []byte) *store.Ban {
	var ban store.Ban
	if err := json.Unmarshal(val, &ban); err != nil {
		b.log.Warn("ignoring undecodable ban", "key", key, "err", err)
		return nil
	}
	return &ban
}

func (b *banSet) apply(changes []store.Change) {
	var added []*store.Ban
	for _, c := range changes {
		switch c.Type {
		case store.OpPut, store.OpAppend:
			if ban := b.decode(c.Key, c.Value); ban != nil {
				b.byKey[c.Key] = ban
				added = append(added, ban)
			} else {
				delete(b.byKey, c.Key)
			}
		case store.OpDelete:
			delete(b.byKey, c.Key)
		case store.OpClear:
			clear(b.byKey)
		}
	}
	b.publish()
	if len(added) > 0 && b.added != nil {
		b.added(added)
	}
}

func (b *banSet) load(tx *store.Tx) (func(), error) {
	fresh := map[string]*store.Ban{}
	err := tx.ForEach(store.TableBanned, func(key string, val []byte) error {
		if ban := b.decode(key, val); ban != nil {
			fresh[key] = ban
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return func() {
		b.byKey = fresh
		b.publish()
	}, nil
}

// remoteAddr extracts the IP of a client's remote address.
func remoteAddr(remote string) (netip.Addr, bool) {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		a, err := netip.ParseAddr(remote)
		return a.Unmap(), err == nil
	}
	return ap.Addr().Unmap(), true
}

// match returns the ban, in force at now, that applies to the client, or nil.
func (b *banSet) match(clientID, username, remote string, now time.Time) *store.Ban {
	ix := b.index.Load()
	live := func(ban *store.Ban) bool { return ban != nil && !ban.Expired(now) }
	if ban := ix.clientID[clientID]; live(ban) {
		return ban
	}
	if username != "" {
		if ban := ix.username[username]; live(ban) {
			return ban
		}
	}
	if len(ix.host) == 0 && len(ix.nets) == 0 {
		return nil
	}
	addr, ok := remoteAddr(remote)
	if !ok {
		return nil
	}
	if ban := ix.host[addr]; live(ban) {
		return ban
	}
	for _, n := range ix.nets {
		if n.prefix.Contains(addr) && live(n.ban) {
			return n.ban
		}
	}
	return nil
}

// matches reports whether one ban applies to the client.
func banMatches(ban *store.Ban, clientID, username, remote string) bool {
	switch ban.Kind {
	case store.KindClientID:
		return ban.Value == clientID
	case store.KindUsername:
		return username != "" && ban.Value == username
	case store.KindPeerhost:
		p, err := ParsePeerhost(ban.Value)
		if err != nil {
			return false
		}
		addr, ok := remoteAddr(remote)
		return ok && p.Contains(addr)
	}
	return false
}

// expired returns the keys of bans expired at now.
func (b *banSet) expired(now time.Time) []string {
	ix := b.index.Load()
	if ix.expiring == 0 {
		return nil
	}
	var keys []string
	check := func(ban *store.Ban) {
		if ban.Expired(now) {
			keys = append(keys, store.BanKey(ban.Kind, ban.Value))
		}
	}
	for _, ban := range ix.clientID {
		check(ban)
	}
	for _, ban := range ix.username {
		check(ban)
	}
	for _, ban := range ix.host {
		check(ban)
	}
	for _, n := range ix.nets {
		check(n.ban)
	}
	return keys
}

// bannedHook refuses banned clients at CONNECT. mochi ends the connection
// without a CONNACK when OnConnect fails, so the hook sends it: 0x8A
// (banned) for MQTT 5 and 0x05 (not authorized) for 3.1.1, which has no
// "banned" code.
type bannedHook struct {
	mqtt.HookBase
	server *mqtt.Server
	bans   *banSet
}

func (h *bannedHook) ID() string           { return "roost-banned" }
func (h *bannedHook) Provides(b byte) bool { return b == mqtt.OnConnect }

func (h *bannedHook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	ban := h.bans.match(cl.ID, string(pk.Connect.Username), cl.Net.Remote, time.Now())
	if ban == nil {
		return nil
	}
	h.Log.Info("banned client refused", "client", cl.ID, "username", string(pk.Connect.Username),
		"remote", cl.Net.Remote, "ban", ban.Kind+":"+ban.Value, "reason", ban.Reason)
	code := packets.ErrBanned
	if cl.Properties.ProtocolVersion < 5 {
		code = packets.Err3NotAuthorized
	}
	_ = h.server.SendConnack(cl, code, false, nil)
	return packets.ErrBanned
}

// kick disconnects connected clients that the new bans apply to.
func (h *bannedHook) kick(bans []*store.Ban) {
	now := time.Now()
	for _, cl := range h.server.Clients.GetAll() {
		if connState(cl) == nil || cl.Closed() {
			continue
		}
		for _, ban := range bans {
			if ban.Expired(now) || !banMatches(ban, cl.ID, string(cl.Properties.Username), cl.Net.Remote) {
				continue
			}
			h.Log.Info("disconnecting newly banned client", "client", cl.ID, "ban", ban.Kind+":"+ban.Value)
			if cl.Properties.ProtocolVersion >= 5 {
				_ = h.server.DisconnectClient(cl, packets.ErrAdministrativeAction)
			} else {
				cl.Stop(packets.ErrBanned) // 3.1.1 has no server DISCONNECT
			}
			break
		}
	}
}

// cleanExpired deletes expired bans from the store; run on the leader.
func cleanExpiredBans(ctx context.Context, st *store.Store, bans *banSet, log *slog.Logger) {
	keys := bans.expired(time.Now())
	if len(keys) == 0 {
		return
	}
	ops := make([]store.Op, len(keys))
	for i, k := range keys {
		ops[i] = store.Delete(store.TableBanned, k)
	}
	if _, err := st.Apply(ctx, ops...); err != nil {
		log.Warn("cannot delete expired bans", "err", err)
		return
	}
	log.Info("deleted expired bans", "count", len(keys))
}
