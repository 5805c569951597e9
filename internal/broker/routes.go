package broker

import (
	"slices"
	"strings"
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
)

// localRoutes tracks the topic filters that have local subscribers: the
// node's routes, which the cluster announces to the other nodes.
//
// It mirrors mochi's topic index, which holds one entry per (client id,
// filter), for connected clients and persistent offline sessions alike.
// The same pairs are kept here, so that events which move an entry from
// one client object to another with the same id (mochi's own session
// takeover) change nothing, and removing a pair twice is harmless. A
// filter is a route while at least one pair holds it. Shared
// subscriptions count as "$share/group/filter" (mochi also accepts the
// prefix in other letter cases; it is normalised here).
//
// Pairs are added when a SUBSCRIBE succeeds (routingHook.OnSubscribed),
// when a session moves here from another node, and for the sessions
// restored at start; they are removed by every OnUnsubscribed (mochi
// calls it for UNSUBSCRIBE and whenever it drops all of a client's
// subscriptions: clean disconnect, clean-start takeover, session expiry).
//
// Notifications: the callback runs after the change is visible in
// filters(), under notifyMu, which serialises changes with their
// notifications (so a filter's "added" and "removed" reach the cluster
// in the order they happened) and is never taken by filters(): the
// cluster calls filters() under its own lock, which its callback takes.
type localRoutes struct {
	notify func() func(filter string, added bool) // the current callback, or nil

	notifyMu sync.Mutex
	mu       sync.Mutex
	pairs    map[routePair]struct{}
	counts   map[string]int // canonical filter → pairs holding it
	list     []string       // sorted filters; rebuilt when dirty
	dirty    bool
}

type routePair struct{ client, filter string }

func newLocalRoutes(notify func() func(string, bool)) *localRoutes {
	return &localRoutes{notify: notify, pairs: map[routePair]struct{}{}, counts: map[string]int{}}
}

// canonicalFilter returns the route form of a subscription filter.
func canonicalFilter(filter string) string {
	if mqtt.IsSharedFilter(filter) && !strings.HasPrefix(filter, "$share/") {
		return "$share/" + filter[len("$share/"):]
	}
	return filter
}

// add records that client subscribes to filters.
func (r *localRoutes) add(client string, filters ...string) {
	pairs := make([]routePair, len(filters))
	for i, f := range filters {
		pairs[i] = routePair{client, f}
	}
	r.change(pairs, true)
}

// remove records that client no longer subscribes to filters.
func (r *localRoutes) remove(client string, filters ...string) {
	pairs := make([]routePair, len(filters))
	for i, f := range filters {
		pairs[i] = routePair{client, f}
	}
	r.change(pairs, false)
}

func (r *localRoutes) change(pairs []routePair, add bool) {
	if len(pairs) == 0 {
		return
	}
	r.notifyMu.Lock()
	defer r.notifyMu.Unlock()
	r.changeLocked(pairs, add)
}

// addScanned adds the pairs that scan returns; scan runs with notifyMu
// held, so changes made after it read the state wait for it.
func (r *localRoutes) addScanned(scan func() []routePair) {
	r.notifyMu.Lock()
	defer r.notifyMu.Unlock()
	r.changeLocked(scan(), true)
}

func (r *localRoutes) changeLocked(pairs []routePair, add bool) {
	var changed []string
	r.mu.Lock()
	for _, p := range pairs {
		_, have := r.pairs[p]
		if have == add {
			continue
		}
		c := canonicalFilter(p.filter)
		if add {
			r.pairs[p] = struct{}{}
			r.counts[c]++
			if r.counts[c] == 1 {
				changed = append(changed, c)
			}
		} else {
			delete(r.pairs, p)
			r.counts[c]--
			if r.counts[c] <= 0 {
				delete(r.counts, c)
				changed = append(changed, c)
			}
		}
	}
	if len(changed) > 0 {
		r.dirty = true
	}
	r.mu.Unlock()
	if len(changed) == 0 || r.notify == nil {
		return
	}
	if fn := r.notify(); fn != nil {
		for _, f := range changed {
			fn(f, add)
		}
	}
}

// filters returns the routes, sorted. The slice is shared: callers must
// not modify it.
func (r *localRoutes) filters() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.dirty || r.list == nil {
		list := make([]string, 0, len(r.counts))
		for f := range r.counts {
			list = append(list, f)
		}
		slices.Sort(list)
		r.list = slices.Clip(list)
		r.dirty = false
	}
	return r.list
}
