package backup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"runtime"
	"sync"
	"time"

	"github.com/roostmq/roost/internal/store"
)

// pipeline turns the records of a source into what is staged: each
// record validated, its key derived, duplicates found, ACL rules given
// their ids.
type pipeline struct {
	p    *problems
	seed maphash.Seed
	seen map[string]map[uint64]int32 // table → key hash → record number

	aclLastFile    uint64 // the last non-zero id in the input, and its record
	aclLastFileRec int
	aclLast        uint64 // the last id given
}

func newPipeline(p *problems) *pipeline {
	return &pipeline{p: p, seed: maphash.MakeSeed(), seen: map[string]map[uint64]int32{}}
}

// accept takes one record that passed checkRecord (as c) and returns
// its key and the value to stage (raw itself unless an ACL rule's id
// changed); rule is set for ACL rules. It finds what needs the records
// before: duplicate keys, ACL ids out of order.
//
// Duplicates are found by a 64-bit hash of the key (a few bytes per
// record however long the keys are); a collision between two different
// keys, reported as a duplicate, has odds of about n²/2^65: 3·10^-8 for
// a million records of one table.
func (pl *pipeline) accept(table string, num int, raw []byte, c checked) (key string, val []byte, rule *store.ACLRule, ok bool) {
	if table == store.TableACL {
		r := c.rule
		if r.ID > 0 {
			switch {
			case r.ID == pl.aclLastFile:
				pl.p.add(table, num, "id", "duplicate id %d: record %d has the same", r.ID, pl.aclLastFileRec)
				return "", nil, nil, false
			case r.ID < pl.aclLastFile:
				pl.p.add(table, num, "id", "id %d is lower than record %d's id %d: rules are listed in evaluation order, ids increasing", r.ID, pl.aclLastFileRec, pl.aclLastFile)
				return "", nil, nil, false
			}
			pl.aclLastFile, pl.aclLastFileRec = r.ID, num
		}
		id := r.ID
		if id <= pl.aclLast {
			id = pl.aclLast + 1
		}
		pl.aclLast = id
		val = raw
		if id != r.ID {
			var err error
			if val, err = store.WithRecordID(raw, id); err != nil {
				pl.p.add(table, num, "id", "cannot set the id: %v", err)
				return "", nil, nil, false
			}
			r.ID = id
		}
		return store.ACLKey(id), val, r, true
	}
	m := pl.seen[table]
	if m == nil {
		m = map[uint64]int32{}
		pl.seen[table] = m
	}
	h := maphash.String(pl.seed, c.key)
	if prev, dup := m[h]; dup {
		pl.p.add(table, num, keyField(table), "duplicate key %q: record %d has the same key", c.key, prev)
		return "", nil, nil, false
	}
	m[h] = int32(num)
	return c.key, raw, nil, true
}

// planner works out, during the validating pass, what an import would
// do to each table: records added, changed, unchanged and (replace)
// removed, against the state at the import's read point.
type planner struct {
	st      *store.Store
	replace bool
	reports map[string]*TableReport
	pend    []planRec
	size    int
	acl     *aclPlan
}

type planRec struct {
	table, key string
	val        []byte
}

type aclPlan struct {
	idx     map[store.ACLMatch][]string // existing rules' permissions, in order
	matched int
}

func newPlanner(st *store.Store, replace bool, tables []string) (*planner, error) {
	pl := &planner{st: st, replace: replace, reports: map[string]*TableReport{}}
	err := st.View(func(tx *store.Tx) error {
		for _, t := range tables {
			pl.reports[t] = &TableReport{Table: t, existing: tx.Count(t)}
			if t != store.TableACL {
				continue
			}
			pl.acl = &aclPlan{idx: map[store.ACLMatch][]string{}}
			rules, err := store.List[store.ACLRule](tx, store.TableACL)
			if err != nil {
				return err
			}
			for _, r := range rules {
				pl.acl.idx[r.MatchOf()] = append(pl.acl.idx[r.MatchOf()], r.Permission)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("import: read the current state: %w", err)
	}
	return pl, nil
}

func (pl *planner) add(table, key string, val []byte, rule *store.ACLRule) error {
	rep := pl.reports[table]
	if rep == nil {
		return nil
	}
	rep.Records++
	if table == store.TableACL {
		m := rule.MatchOf()
		if list := pl.acl.idx[m]; len(list) > 0 {
			pl.acl.idx[m] = list[1:]
			pl.acl.matched++
			if list[0] == rule.Permission {
				rep.Unchanged++
			} else {
				rep.Changed++
			}
		} else {
			rep.Added++
		}
		return nil
	}
	pl.pend = append(pl.pend, planRec{table: table, key: key, val: bytes.Clone(val)})
	pl.size += len(val)
	if len(pl.pend) >= 4096 || pl.size >= 4<<20 {
		return pl.flush()
	}
	return nil
}

// flush compares the pending records with the state, in one short read.
func (pl *planner) flush() error {
	if len(pl.pend) == 0 {
		return nil
	}
	err := pl.st.View(func(tx *store.Tx) error {
		for _, r := range pl.pend {
			rep := pl.reports[r.table]
			switch cur := tx.Get(r.table, r.key); {
			case cur == nil:
				rep.Added++
			case bytes.Equal(cur, r.val):
				rep.Unchanged++
			default:
				rep.Changed++
			}
		}
		return nil
	})
	pl.pend, pl.size = pl.pend[:0], 0
	return err
}

// finish fills the removed counts of a replace.
func (pl *planner) finish() error {
	if err := pl.flush(); err != nil {
		return err
	}
	if !pl.replace {
		return nil
	}
	for _, rep := range pl.reports {
		rep.Removed = max(rep.existing-rep.Changed-rep.Unchanged, 0)
	}
	return nil
}

// stager sends staged records to the store in bounded ops, a few in
// flight at once (they share the store's ordered write queue).
type stager struct {
	st    *store.Store
	id    string
	limit int // bytes per op

	table string
	batch []store.KV
	size  int

	sem    chan struct{}
	wg     sync.WaitGroup
	mu     sync.Mutex
	err    error
	counts map[string]int
}

func newStager(st *store.Store, id string, limit, window int) *stager {
	return &stager{st: st, id: id, limit: limit, sem: make(chan struct{}, window), counts: map[string]int{}}
}

func (s *stager) add(ctx context.Context, table, key string, val []byte) error {
	if table != s.table || s.size >= s.limit {
		if err := s.send(ctx); err != nil {
			return err
		}
		s.table = table
	}
	s.batch = append(s.batch, store.KV{Key: key, Value: bytes.Clone(val)})
	s.size += len(key) + len(val)
	s.counts[table]++
	return nil
}

func (s *stager) failed() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

func (s *stager) send(ctx context.Context) error {
	if err := s.failed(); err != nil {
		return err
	}
	if len(s.batch) == 0 {
		return nil
	}
	op := store.StagePut(s.id, s.table, time.Now(), s.batch)
	s.batch, s.size = nil, 0
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	s.wg.Add(1)
	s.apply(ctx, op, 0)
	return nil
}

// apply submits op; a put lost to a leader change is submitted again (a
// put applied twice stages the same records: retrying is safe).
func (s *stager) apply(ctx context.Context, op store.Op, attempt int) {
	s.st.ApplyAsync(ctx, []store.Op{op}, func(_ *store.Result, err error) {
		if err != nil && retryable(err) && attempt < applyRetries && ctx.Err() == nil {
			go func() {
				select {
				case <-time.After(retryDelay(attempt)):
					s.apply(ctx, op, attempt+1)
				case <-ctx.Done():
					s.finish(ctx.Err())
				}
			}()
			return
		}
		s.finish(err)
	})
}

func (s *stager) finish(err error) {
	defer s.wg.Done()
	<-s.sem
	if err != nil {
		s.mu.Lock()
		if s.err == nil {
			s.err = fmt.Errorf("stage records: %w", err)
		}
		s.mu.Unlock()
	}
}

// applyRetries bounds the retries of an idempotent op lost to a leader
// change (an election takes about a second).
const applyRetries = 8

func retryable(err error) bool { return errors.Is(err, store.ErrNotLeader) }

func retryDelay(attempt int) time.Duration {
	return min(100*time.Millisecond<<attempt, 2*time.Second)
}

// applyRetry applies one idempotent op (stage begin and commit: a commit
// applied twice reports success the second time), retrying after a
// leader change.
func applyRetry(ctx context.Context, st *store.Store, op store.Op) (*store.Result, error) {
	for attempt := 0; ; attempt++ {
		res, err := st.Apply(ctx, op)
		if err == nil || !retryable(err) || attempt >= applyRetries {
			return res, err
		}
		select {
		case <-time.After(retryDelay(attempt)):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// wait sends what is left and waits for every op.
func (s *stager) wait(ctx context.Context) error {
	err := s.send(ctx)
	s.wg.Wait()
	if err != nil {
		return err
	}
	return s.failed()
}

// scanChecked scans src and calls fn, in input order, for each record
// that passes checkRecord; every problem, of the input and of its
// records, goes to p in input order. checkRecord (most of the work of
// validating) runs on every CPU; reading the input is one goroutine and
// fn another.
func scanChecked(ctx context.Context, src source, p *problems, fn func(table string, num int, raw []byte, c checked) error) (*sourceInfo, error) {
	type item struct {
		table string
		num   int
		raw   []byte
		prob  *Problem // a problem of the input itself, in its place
		c     checked
		ok    bool
		probs []Problem // the record's problems
	}
	type batch struct {
		seq   int
		items []item
	}
	const batchSize = 256
	workers := max(runtime.GOMAXPROCS(0), 1)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	work := make(chan *batch, 2*workers)
	done := make(chan *batch, 2*workers)

	var (
		info    *sourceInfo
		scanErr error
		fatal   bool
	)
	readerDone := make(chan struct{})
	go func() {
		seq := 0
		cur := &batch{}
		flush := func() error {
			if len(cur.items) == 0 {
				return nil
			}
			cur.seq = seq
			seq++
			select {
			case work <- cur:
			case <-ctx.Done():
				return ctx.Err()
			}
			cur = &batch{items: make([]item, 0, batchSize)}
			return nil
		}
		rp := &problems{sink: func(pr Problem) { cur.items = append(cur.items, item{prob: &pr}) }}
		info, scanErr = src.scan(ctx, rp, func(table string, num int, raw []byte) error {
			cur.items = append(cur.items, item{table: table, num: num, raw: bytes.Clone(raw)})
			if len(cur.items) >= batchSize {
				return flush()
			}
			return nil
		})
		if err := flush(); scanErr == nil {
			scanErr = err
		}
		fatal = rp.fatal
		close(work)
		close(readerDone)
	}()
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range work {
				for i := range b.items {
					it := &b.items[i]
					if it.prob != nil {
						continue
					}
					lp := &problems{}
					it.c, it.ok = checkRecord(it.table, it.num, it.raw, lp)
					it.probs = lp.list
				}
				select {
				case done <- b:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	go func() {
		wg.Wait()
		close(done)
	}()

	pending := map[int]*batch{}
	next := 0
	var fnErr error
	for b := range done {
		pending[b.seq] = b
		for {
			bb, ok := pending[next]
			if !ok {
				break
			}
			delete(pending, next)
			next++
			for _, it := range bb.items {
				if fnErr != nil {
					break
				}
				if it.prob != nil {
					p.put(*it.prob)
					continue
				}
				for _, pr := range it.probs {
					p.put(pr)
				}
				if it.ok {
					if err := fn(it.table, it.num, it.raw, it.c); err != nil {
						fnErr = err
						cancel() // stop the reader and the workers; drain done
					}
				}
			}
		}
	}
	<-readerDone
	if fnErr != nil {
		return nil, fnErr
	}
	if scanErr != nil {
		return nil, scanErr
	}
	if next == 0 && ctx.Err() != nil {
		return nil, ctx.Err()
	}
	p.fatal = p.fatal || fatal
	return info, nil
}
