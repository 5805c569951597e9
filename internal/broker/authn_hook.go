package broker

import (
	"encoding/json"
	"log/slog"
	"sync"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/roostmq/roost/internal/broker/authn"
	"github.com/roostmq/roost/internal/config"
	"github.com/roostmq/roost/internal/store"
)

// userCache keeps decoded users-table records, so a CONNECT does not read
// and decode JSON each time. Entries (including "no such user") are
// loaded on first use and dropped when the store reports a change to their
// key. A generation counter stops a lookup that raced with a change from
// caching the value it read before the change.
type userCache struct {
	st  *store.Store
	max int // entries kept before the cache starts over

	mu      sync.RWMutex
	gen     uint64
	entries map[string]*store.User // nil value: no such user
}

func newUserCache(st *store.Store, max int) *userCache {
	return &userCache{st: st, max: max, entries: map[string]*store.User{}}
}

// get returns the user stored under key, or nil. The record is shared:
// callers must not modify it.
func (c *userCache) get(key string) (*store.User, error) {
	c.mu.RLock()
	u, ok := c.entries[key]
	gen := c.gen
	c.mu.RUnlock()
	if ok {
		return u, nil
	}
	err := c.st.View(func(tx *store.Tx) error {
		rec, found, err := store.Get[store.User](tx, store.TableUsers, key)
		if found {
			u = &rec
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.gen == gen {
		if len(c.entries) >= c.max {
			clear(c.entries)
		}
		c.entries[key] = u
	}
	c.mu.Unlock()
	return u, nil
}

// onChange drops the cached entries a commit touched.
func (c *userCache) onChange(changes []store.Change) {
	touched := false
	for _, ch := range changes {
		if ch.Reset() || ch.Table == store.TableUsers {
			touched = true
			break
		}
	}
	if !touched {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for _, ch := range changes {
		switch {
		case ch.Reset(), ch.Table == store.TableUsers && ch.Type == store.OpClear:
			clear(c.entries)
		case ch.Table == store.TableUsers:
			delete(c.entries, ch.Key)
		}
	}
}

// userIDType is the node's effective authn.user_id_type: the cluster
// override (the config table's record authn.user_id_type) when there is
// one, else the node's own config. A mirror of the config table keeps it
// current on every node, so a change (an EMQX 4 import sets "both")
// takes effect cluster-wide without a restart.
type userIDType struct {
	base string // the node's config
	log  *slog.Logger

	override string // guarded by the mirror's lock
	cur      atomic.Pointer[effectiveIDType]
}

type effectiveIDType struct {
	value    string
	override bool // value is the cluster override's
}

func newUserIDType(base string, log *slog.Logger) *userIDType {
	t := &userIDType{base: base, log: log}
	t.cur.Store(&effectiveIDType{value: base})
	return t
}

// get returns the effective value and whether it is the cluster override.
func (t *userIDType) get() (value string, override bool) {
	e := t.cur.Load()
	return e.value, e.override
}

func (t *userIDType) apply(changes []store.Change) {
	for _, ch := range changes {
		if ch.Key != config.OverrideUserIDType && ch.Type != store.OpClear {
			continue
		}
		switch ch.Type {
		case store.OpPut:
			t.override = t.parse(ch.Value)
		case store.OpDelete, store.OpClear:
			t.override = ""
		}
	}
	t.install()
}

func (t *userIDType) load(tx *store.Tx) (func(), error) {
	v := tx.Get(store.TableConfig, config.OverrideUserIDType)
	return func() {
		t.override = ""
		if v != nil {
			t.override = t.parse(v)
		}
		t.install()
	}, nil
}

// parse reads an override record; a bad one is ignored (with a warning):
// the node keeps its own setting rather than refuse every client.
func (t *userIDType) parse(rec []byte) string {
	var o store.ConfigOverride
	if err := json.Unmarshal(rec, &o); err != nil {
		t.log.Warn("ignoring the cluster config override: not a config record", "key", config.OverrideUserIDType, "err", err)
		return ""
	}
	v, err := config.ParseOverride(config.OverrideUserIDType, o.Value)
	if err != nil {
		t.log.Warn("ignoring the cluster config override", "key", config.OverrideUserIDType, "err", err)
		return ""
	}
	return v
}

func (t *userIDType) install() {
	eff := &effectiveIDType{value: t.base}
	if t.override != "" {
		eff = &effectiveIDType{value: t.override, override: true}
	}
	if old := t.cur.Swap(eff); *old != *eff {
		if eff.override {
			t.log.Info("authn.user_id_type follows the cluster override (config table)", "user_id_type", eff.value,
				"node_config", t.base, "undo", "roost ctl config unset "+config.OverrideUserIDType)
		} else {
			t.log.Info("authn.user_id_type follows this node's config again", "user_id_type", eff.value)
		}
	}
}

// authnHook authenticates clients against the users table.
//
// mochi answers a failed OnConnectAuthenticate with CONNACK 0x86, which it
// maps to 0x05 (not authorized) for MQTT 3.1.1, where "bad user name or
// password" is 0x04. So the decision is taken in OnConnect, which may send
// its own CONNACK and end the connection: 0x86 for MQTT 5, 0x04 for 3.1.1.
// OnConnectAuthenticate then only has to let the client in.
type authnHook struct {
	mqtt.HookBase
	server *mqtt.Server
	users  *userCache
	enable bool
	idType *userIDType
}

func (h *authnHook) ID() string { return "roost-authn" }

func (h *authnHook) Provides(b byte) bool {
	return b == mqtt.OnConnect || b == mqtt.OnConnectAuthenticate
}

func (h *authnHook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	if !h.enable {
		return nil
	}
	u, known, err := h.authenticate(cl.ID, string(pk.Connect.Username), string(pk.Connect.Password))
	if err != nil {
		h.Log.Error("cannot read users table; refusing client", "client", cl.ID, "err", err)
		_ = h.server.SendConnack(cl, packets.ErrServerUnavailable, false, nil)
		return packets.ErrServerUnavailable
	}
	if u == nil {
		h.Log.Info("authentication failed", "client", cl.ID, "username", string(pk.Connect.Username),
			"remote", cl.Net.Remote, "user_known", known)
		code := packets.ErrBadUsernameOrPassword // 0x86
		if cl.Properties.ProtocolVersion < 5 {
			code = packets.ErrMalformedUsernameOrPassword // 0x04, "bad user name or password" in 3.1.1
		}
		_ = h.server.SendConnack(cl, code, false, nil)
		return packets.ErrBadUsernameOrPassword
	}
	if st := connState(cl); st != nil {
		st.superuser = u.Superuser
	}
	return nil
}

// authenticate returns the user record that admits the client, or nil;
// known says whether any candidate record exists. With user_id_type
// "both" it does what EMQX 4.3/4.4's emqx_auth_mnesia:check does: the
// client id's record and the user name's are candidates, and the client
// is admitted when either one's password matches (a wrong password on
// the first does not stop the second); the client id's is tried first,
// so it decides the superuser flag when both match.
func (h *authnHook) authenticate(clientID, username, password string) (u *store.User, known bool, err error) {
	var cands [2][2]string // kind, id
	switch mode, _ := h.idType.get(); mode {
	case UserIDClientID:
		cands[0] = [2]string{store.KindClientID, clientID}
	case UserIDBoth:
		cands[0] = [2]string{store.KindClientID, clientID}
		cands[1] = [2]string{store.KindUsername, username}
	default:
		cands[0] = [2]string{store.KindUsername, username}
	}
	for _, c := range cands {
		if c[1] == "" {
			continue
		}
		rec, err := h.users.get(store.UserKey(c[0], c[1]))
		if err != nil {
			return nil, known, err
		}
		if rec == nil {
			continue
		}
		known = true
		if authn.Verify(rec, password) {
			return rec, true, nil
		}
	}
	return nil, known, nil
}

// OnConnectAuthenticate admits every client that got past OnConnect.
func (h *authnHook) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }
