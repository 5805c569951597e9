package broker

import (
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/roostmq/roost/internal/store"
)

// mirror keeps an in-memory structure (compiled ACL rules, bans,
// the retained-message expiry index) in step with one replicated table.
//
// Normal commits arrive through store.OnChange and are applied
// incrementally, on the raft apply goroutine, so a write is visible to the
// broker by the time store.Apply returns on this node. A Reset change
// (snapshot restore) replaces the whole state: the table is then re-read
// in the background, and changes that arrive meanwhile are buffered and
// replayed on top of it if they are newer than the read (raft index). The
// same path does the initial load, so nothing committed between the
// initial read and the OnChange registration is lost.
//
// OnChange callbacks must not read the store (the FSM holds its lock while
// notifying), which is why reloads run on their own goroutine.
type mirror struct {
	table string
	st    *store.Store
	log   *slog.Logger

	// apply folds committed changes of the table into the structure.
	// It runs with mu held.
	apply func(changes []store.Change)
	// load reads the whole table and returns a function that installs
	// it; install runs with mu held.
	load func(tx *store.Tx) (install func(), err error)

	mu       sync.Mutex
	loading  bool           // a (re)load is in progress: buffer changes
	resetSeq uint64         // bumped by every Reset, to detect one during a load
	buffered []store.Change // changes that arrived while loading
	closed   bool
	done     chan struct{} // closed by stop: ends reload retries
}

func newMirror(st *store.Store, table string, log *slog.Logger,
	apply func([]store.Change), load func(*store.Tx) (func(), error)) *mirror {
	return &mirror{table: table, st: st, log: log.With("table", table), apply: apply, load: load,
		done: make(chan struct{})}
}

// start registers for changes and loads the table. It returns once the
// structure reflects the store's current state.
func (m *mirror) start() error {
	m.mu.Lock()
	m.loading = true
	m.mu.Unlock()
	m.st.OnChange(m.onChange)
	for {
		retry, err := m.loadOnce()
		if err != nil || !retry {
			return err
		}
	}
}

// stop makes the mirror ignore further changes (the store has no way to
// unregister a callback) and ends background reloads.
func (m *mirror) stop() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.closed {
		m.closed = true
		close(m.done)
	}
}

func (m *mirror) onChange(changes []store.Change) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	var mine []store.Change
	for _, c := range changes {
		switch {
		case c.Reset():
			m.resetSeq++
			m.buffered = m.buffered[:0]
			mine = mine[:0] // superseded by the new state
			if !m.loading {
				m.loading = true
				go m.reloadLoop()
			}
		case c.Table == m.table:
			if m.loading {
				m.buffered = append(m.buffered, c)
			} else {
				mine = append(mine, c)
			}
		}
	}
	if len(mine) > 0 {
		m.apply(mine)
	}
}

// loadOnce reads the table and installs it, unless a Reset arrived during
// the read (retry is then true).
func (m *mirror) loadOnce() (retry bool, err error) {
	m.mu.Lock()
	seq := m.resetSeq
	m.mu.Unlock()

	var index uint64
	var install func()
	err = m.st.View(func(tx *store.Tx) error {
		index = tx.AppliedIndex()
		var err error
		install, err = m.load(tx)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("load table %s: %w", m.table, err)
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	if m.resetSeq != seq {
		return true, nil
	}
	if m.closed {
		return false, nil
	}
	install()
	var replay []store.Change
	for _, c := range m.buffered {
		if c.Index > index { // older ones are in what we read
			replay = append(replay, c)
		}
	}
	if len(replay) > 0 {
		m.apply(replay)
	}
	m.buffered = nil
	m.loading = false
	return false, nil
}

// reloadLoop re-reads the table after a Reset until it succeeds.
func (m *mirror) reloadLoop() {
	backoff := 50 * time.Millisecond
	for {
		retry, err := m.loadOnce()
		if err == nil && !retry {
			m.log.Info("reloaded table after a state reset")
			return
		}
		if err != nil {
			m.log.Error("reload after state reset failed; retrying", "err", err)
			select {
			case <-m.done:
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
		}
	}
}
