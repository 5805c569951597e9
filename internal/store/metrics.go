package store

import (
	"strings"
	"time"

	"github.com/hashicorp/raft"
)

// Count returns the records of table as of the last applied entry. It is
// a cheap read kept by every apply, for metrics; Tx.Count is exact for
// one view but walks the table.
func (s *Store) Count(table string) int64 { return s.fsm.count(table) }

// RaftMetrics is what the node's metrics show of raft and the FSM.
type RaftMetrics struct {
	State        string // leader | follower | candidate | shutdown
	HasLeader    bool   // this node knows a leader (itself or another)
	Term         uint64
	CommitIndex  uint64
	AppliedIndex uint64 // the last entry in the local state (bbolt)
	LastLogIndex uint64
	// LastContact is how long ago a follower last heard from the leader;
	// HasContact is false on the leader and before any contact.
	LastContact time.Duration
	HasContact  bool
	Voters      int
	// Servers is false when the configuration could not be read (raft
	// shut down): Voters is then unknown.
	Servers       bool
	LeaderChanges uint64 // leaders seen since start (a new leader, or this node, elected)

	FSMBatches   uint64        // bbolt transactions applying committed entries
	FSMEntries   uint64        // entries passed to them
	FSMApplyTime time.Duration // time spent in them
}

// RaftMetrics reads raft's counters: cheap reads, no scan and no call
// through raft's main loop.
func (s *Store) RaftMetrics() RaftMetrics {
	r := s.r()
	m := RaftMetrics{
		State:        strings.ToLower(r.State().String()),
		Term:         r.CurrentTerm(),
		CommitIndex:  r.CommitIndex(),
		AppliedIndex: s.AppliedIndex(),
		LastLogIndex: r.LastIndex(),

		LeaderChanges: s.leaderChanges.Load(),
		FSMBatches:    s.fsm.stats.batches.Load(),
		FSMEntries:    s.fsm.stats.entries.Load(),
		FSMApplyTime:  time.Duration(s.fsm.stats.nanos.Load()),
	}
	if addr, _ := r.LeaderWithID(); addr != "" {
		m.HasLeader = true
	}
	if r.State() != raft.Leader {
		if t := r.LastContact(); !t.IsZero() {
			m.LastContact, m.HasContact = time.Since(t), true
		}
	}
	if f := r.GetConfiguration(); f.Error() == nil {
		m.Servers = true
		for _, srv := range f.Configuration().Servers {
			if srv.Suffrage == raft.Voter {
				m.Voters++
			}
		}
	}
	return m
}

// observeLeaders counts the leaders r elects (LeaderObservation with a
// leader), in the filter raft calls synchronously: no channel, no
// goroutine to stop.
func (s *Store) observeLeaders(r *raft.Raft) {
	r.RegisterObserver(raft.NewObserver(nil, false, func(o *raft.Observation) bool {
		if lo, ok := o.Data.(raft.LeaderObservation); ok && lo.LeaderID != "" {
			s.leaderChanges.Add(1)
		}
		return false
	}))
}
