package cluster

import (
	"strings"
	"sync"

	"github.com/roostmq/roost/internal/broker"
)

// routeTable holds which topic filters each other node has subscribers
// for. It is soft state owned by each node and sent over the forward
// links (a full set on connect, then deltas), not written through raft:
// when a node's link goes away, so do its routes.
type routeTable struct {
	mu     sync.RWMutex
	byNode map[string]map[string]int // node id → filter set (values unused)
	rr     map[string]uint64         // shared group → round-robin counter
}

func newRouteTable() *routeTable {
	return &routeTable{byNode: map[string]map[string]int{}, rr: map[string]uint64{}}
}

func (r *routeTable) replace(node string, filters []string) {
	m := make(map[string]int, len(filters))
	for _, f := range filters {
		m[f] = 1
	}
	r.mu.Lock()
	r.byNode[node] = m
	r.mu.Unlock()
}

// update applies a delta. Routes are sets, not counts: a delta that
// repeats what the full set already said is harmless.
func (r *routeTable) update(node, filter string, added bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.byNode[node]
	if m == nil {
		m = map[string]int{}
		r.byNode[node] = m
	}
	if added {
		m[filter] = 1
	} else {
		delete(m, filter)
	}
}

func (r *routeTable) drop(node string) {
	r.mu.Lock()
	delete(r.byNode, node)
	r.mu.Unlock()
}

// plan decides where a message published here on topic goes: the nodes
// with a matching plain filter, and for each shared group with a matching
// filter exactly one member node (round robin across the nodes that have
// members; localShared are this node's own shared filters). It returns
// per remote node the shared subscriptions it must serve, and the local
// shared subscriptions that another node serves instead.
func (r *routeTable) plan(self, topic string, localShared []string) (targets map[string][]string, skipLocal []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	targets = map[string][]string{}
	groups := map[string][]string{} // shared filter → nodes having it
	for _, f := range localShared {
		if matchShared(f, topic) {
			groups[f] = append(groups[f], self)
		}
	}
	for node, filters := range r.byNode {
		for f := range filters {
			if strings.HasPrefix(f, "$share/") {
				if matchShared(f, topic) {
					groups[f] = append(groups[f], node)
				}
				continue
			}
			if _, ok := targets[node]; !ok && broker.MatchTopic(f, topic) {
				targets[node] = nil
			}
		}
	}
	for f, nodes := range groups {
		if len(nodes) == 1 && nodes[0] == self {
			continue
		}
		sortStrings(nodes)
		n := r.rr[f]
		r.rr[f] = n + 1
		pick := nodes[n%uint64(len(nodes))]
		if pick == self {
			continue
		}
		targets[pick] = append(targets[pick], f)
		for _, x := range nodes {
			if x == self {
				skipLocal = append(skipLocal, f)
				break
			}
		}
	}
	return targets, skipLocal
}

// matchShared matches "$share/group/filter" against topic.
func matchShared(shared, topic string) bool {
	rest := strings.TrimPrefix(shared, "$share/")
	_, filter, ok := strings.Cut(rest, "/")
	return ok && broker.MatchTopic(filter, topic)
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}
