package broker

import (
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/roostmq/roost/internal/broker/authn"
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

// authnHook authenticates clients against the users table.
//
// mochi answers a failed OnConnectAuthenticate with CONNACK 0x86, which it
// maps to 0x05 (not authorized) for MQTT 3.1.1, where "bad user name or
// password" is 0x04. So the decision is taken in OnConnect, which may send
// its own CONNACK and end the connection: 0x86 for MQTT 5, 0x04 for 3.1.1.
// OnConnectAuthenticate then only has to let the client in.
type authnHook struct {
	mqtt.HookBase
	server   *mqtt.Server
	users    *userCache
	enable   bool
	idByClID bool // user id type clientid (else username)
}

func (h *authnHook) ID() string { return "roost-authn" }

func (h *authnHook) Provides(b byte) bool {
	return b == mqtt.OnConnect || b == mqtt.OnConnectAuthenticate
}

func (h *authnHook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	if !h.enable {
		return nil
	}
	kind, id := store.KindUsername, string(pk.Connect.Username)
	if h.idByClID {
		kind, id = store.KindClientID, cl.ID
	}
	var u *store.User
	if id != "" {
		var err error
		u, err = h.users.get(store.UserKey(kind, id))
		if err != nil {
			h.Log.Error("cannot read users table; refusing client", "client", cl.ID, "err", err)
			_ = h.server.SendConnack(cl, packets.ErrServerUnavailable, false, nil)
			return packets.ErrServerUnavailable
		}
	}
	if u == nil || !authn.Verify(u, string(pk.Connect.Password)) {
		h.Log.Info("authentication failed", "client", cl.ID, "username", string(pk.Connect.Username),
			"remote", cl.Net.Remote, "user_known", u != nil)
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

// OnConnectAuthenticate admits every client that got past OnConnect.
func (h *authnHook) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }
