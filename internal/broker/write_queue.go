package broker

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Writes to a client go through a queue bounded in bytes.
//
// mochi hands each message for a client to the client's writer goroutine
// through a channel of Options.MaxPendingWrites packets, without waiting:
// when the channel is full, the message is dropped (publishToClient, which
// then calls OnPublishDropped). The writer blocks on the socket as soon as
// the client reads more slowly than messages arrive, so of a burst that
// the client would have read within seconds, everything beyond those 1024
// packets and what the kernel buffers was lost. A longer channel costs 8
// bytes a slot on every connection whatever its traffic, and still counts
// packets, not memory.
//
// So the connection (clientConn) takes what mochi writes into a queue of
// its own, up to Options.MaxQueuedBytes of memory per connection, and a
// goroutine started while the queue holds something writes it to the
// socket. mochi's writer no longer waits for a slow client, and its
// channel stays short. The queue is the connection's byte stream itself,
// so every packet keeps its place: messages cannot overtake one another,
// and topic aliases, packet ids and everything else mochi prepares for
// the client stay as they were. Only when the queue holds its budget does
// a write wait for the socket, as every write did before; mochi's channel
// then fills and mochi drops, which dropHook counts and logs.
//
// Memory is counted in chunks of writeChunk bytes (a larger write gets a
// chunk of its own size) and returned to a pool as soon as the chunk is on
// the socket: an idle connection holds none. A write larger than the
// whole budget is taken when the queue is empty.
//
// Close stops reading at once (a client that has been disconnected must
// not have another packet processed) and closes the socket once the queue
// is written, DISCONNECT included, or after closeFlushWait for a client
// that does not read. A failed write closes the socket too: the stream has
// lost bytes.

const (
	writeChunk     = 16 << 10
	closeFlushWait = 2 * time.Second
)

// writeQueues is what the connections of one broker share.
type writeQueues struct {
	limit    int          // memory per connection, bytes
	held     atomic.Int64 // memory held by all queues
	pool     sync.Pool    // *[]byte of writeChunk capacity
	flushers sync.WaitGroup
}

func newWriteQueues(limit int) *writeQueues {
	qs := &writeQueues{limit: limit}
	qs.pool.New = func() any { b := make([]byte, 0, writeChunk); return &b }
	return qs
}

// writeQueue is one connection's queue.
type writeQueue struct {
	qs       *writeQueues
	mu       sync.Mutex
	room     sync.Cond // broadcast when memory is freed or the queue fails or closes
	chunks   []*[]byte // in order; the last one may have room
	held     int       // memory of chunks, and of those being written
	peak     int       // highest held
	flushing bool      // a goroutine is writing the queue to the socket
	err      error     // first failed write: the stream is broken
	closing  bool
	timer    *time.Timer   // closes the socket if the flush takes too long
	taken    atomic.Uint64 // writes taken, for paceHook
}

func (q *writeQueue) init(qs *writeQueues) {
	q.qs = qs
	q.room.L = &q.mu
}

// need is the memory a write of n bytes adds: none if it fits in the last
// chunk.
func (q *writeQueue) need(n int) int {
	if k := len(q.chunks); k > 0 {
		if last := *q.chunks[k-1]; cap(last)-len(last) >= n {
			return 0
		}
	}
	return max(writeChunk, n)
}

// Write queues p and returns at once, unless the queue holds its budget:
// then it waits until the socket has taken enough.
func (c *clientConn) Write(p []byte) (int, error) {
	q := &c.wq
	q.mu.Lock()
	defer q.mu.Unlock()
	for {
		if q.err != nil {
			return 0, q.err
		}
		if q.closing {
			return 0, net.ErrClosed
		}
		need := q.need(len(p))
		if need == 0 {
			break
		}
		if q.held == 0 || q.held+need <= q.qs.limit {
			q.grow(need)
			break
		}
		q.room.Wait()
	}
	last := q.chunks[len(q.chunks)-1]
	*last = append(*last, p...)
	q.taken.Add(1)
	if !q.flushing {
		q.flushing = true
		q.qs.flushers.Add(1)
		go c.flush()
	}
	return len(p), nil
}

// full reports whether the queue holds its budget: a write that needs
// another chunk would wait.
func (q *writeQueue) full() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.err == nil && q.held > 0 && q.held+writeChunk > q.qs.limit
}

// grow adds a chunk of n bytes of capacity (q.mu held).
func (q *writeQueue) grow(n int) {
	var b *[]byte
	if n == writeChunk {
		b = q.qs.pool.Get().(*[]byte)
	} else {
		s := make([]byte, 0, n)
		b = &s
	}
	q.chunks = append(q.chunks, b)
	q.held += cap(*b)
	q.qs.held.Add(int64(cap(*b)))
	q.peak = max(q.peak, q.held)
}

// release gives back the memory of written or discarded chunks (q.mu
// held).
func (q *writeQueue) release(chunks []*[]byte) {
	for _, b := range chunks {
		n := cap(*b)
		q.held -= n
		q.qs.held.Add(-int64(n))
		if n == writeChunk {
			*b = (*b)[:0]
			q.qs.pool.Put(b)
		}
	}
}

// flush writes the queue to the socket until it is empty.
func (c *clientConn) flush() {
	defer c.wq.qs.flushers.Done()
	q := &c.wq
	var bufs net.Buffers
	for {
		q.mu.Lock()
		batch := q.chunks
		q.chunks = nil
		if len(batch) == 0 || q.err != nil {
			q.release(batch)
			q.flushing = false
			closing := q.closing
			if closing && q.timer != nil {
				q.timer.Stop()
			}
			q.room.Broadcast()
			q.mu.Unlock()
			if closing {
				_ = c.closeConn()
			}
			return
		}
		q.mu.Unlock()

		bufs = bufs[:0]
		for _, b := range batch {
			bufs = append(bufs, *b)
		}
		_, err := bufs.WriteTo(c.Conn) // writev on TCP

		q.mu.Lock()
		q.release(batch)
		if err != nil && q.err == nil {
			q.err = err
			q.release(q.chunks)
			q.chunks = nil
		}
		q.room.Broadcast()
		q.mu.Unlock()
		if err != nil {
			_ = c.closeConn()
		}
	}
}

// Read fails once Close has been called, also for data that arrives while
// the queue is still being written.
func (c *clientConn) Read(p []byte) (int, error) {
	if c.readClosed.Load() {
		return 0, net.ErrClosed
	}
	n, err := c.Conn.Read(p)
	if c.readClosed.Load() {
		return 0, net.ErrClosed
	}
	return n, err
}

// SetDeadline keeps reads failing after Close.
func (c *clientConn) SetDeadline(t time.Time) error {
	if c.readClosed.Load() {
		return c.Conn.SetWriteDeadline(t)
	}
	return c.Conn.SetDeadline(t)
}

func (c *clientConn) SetReadDeadline(t time.Time) error {
	if c.readClosed.Load() {
		return nil
	}
	return c.Conn.SetReadDeadline(t)
}

// Close stops reading and closes the socket once the queue is written
// (see the top of the file). It does not wait.
func (c *clientConn) Close() error {
	q := &c.wq
	q.mu.Lock()
	if q.closing {
		q.mu.Unlock()
		return nil
	}
	q.closing = true
	c.readClosed.Store(true)
	pending := q.flushing && q.err == nil
	if pending {
		q.timer = time.AfterFunc(closeFlushWait, func() { _ = c.closeConn() })
	}
	q.room.Broadcast()
	q.mu.Unlock()
	if !pending {
		return c.closeConn()
	}
	_ = c.Conn.SetReadDeadline(time.Now()) // a blocked Read returns now
	return nil
}

func (c *clientConn) closeConn() error {
	err := net.ErrClosed
	c.closeOnce.Do(func() { err = c.Conn.Close() })
	return err
}

// queued returns the memory the connection's queue holds and the most it
// has held.
func (c *clientConn) queued() (held, peak int) {
	c.wq.mu.Lock()
	defer c.wq.mu.Unlock()
	return c.wq.held, c.wq.peak
}
