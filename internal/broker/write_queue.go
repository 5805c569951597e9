package broker

import (
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// Writes to a client go through a queue bounded in bytes.
//
// mochi hands each message for a client to the client's writer goroutine
// through a channel of Options.MaxPendingWrites packets, without waiting:
// when the channel is full, the message is dropped (publishToClient, which
// then calls OnPublishDropped). The writer blocked on the socket as soon
// as the client read more slowly than messages arrived, so of a burst that
// the client would have read within seconds, everything beyond those 1024
// packets and what the kernel buffers was lost. A longer channel costs 8
// bytes a slot on every connection whatever its traffic, and still counts
// packets, not memory. (The writer also held the client's lock meanwhile,
// which mochi takes to give a QoS 1/2 message a packet id: every publisher
// to a QoS 1 subscriber that stopped reading stopped too.)
//
// So the connection (clientConn) takes what mochi writes into a queue of
// its own, up to Options.MaxQueuedBytes of memory per connection, and a
// goroutine started while the queue holds something writes it to the
// socket. (While the queue is empty, a write to a TCP socket goes to it
// at once, as much as the socket takes without waiting: one system call,
// as before; only the rest is queued. write_direct_unix.go.) mochi's writer no longer waits for a slow client, and its
// channel stays short (see pace.go for the writer that is slow for want
// of CPU). The queue is the connection's byte stream itself, so every
// packet keeps its place: messages cannot overtake one another, and topic
// aliases, packet ids and everything else mochi prepares for the client
// stay as they were.
//
// A write that does not fit in the budget loses its live messages:
// PUBLISH packets neither retained nor duplicate, which mochi's writer
// sends (and the next message after an acknowledgement frees a QoS 1/2
// slot). They are counted (onDrop: dropHook) and the rest of the write is
// queued. A QoS 1/2 message so dropped stays in the session's inflight
// messages, to be sent again when a persistent session resumes. What is
// left waits for room: Roost's own deliveries (retained messages on
// subscribe, a moved session's messages, which set retain or duplicate),
// and mochi's re-sends, are slowed down by a slow reader and lose nothing;
// control packets (acknowledgements, PINGRESP, DISCONNECT) may go
// controlSlack over the budget first, so that a DISCONNECT for a client
// that does not read does not wait. So may a message that introduces a
// topic alias (MQTT 5): the client must learn the alias before the
// messages that use it.
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
	controlSlack   = 4 * writeChunk
	closeFlushWait = 2 * time.Second
)

// dropReport is what a write lost: PUBLISH packets by QoS, and their bytes.
type dropReport struct {
	byQoS [3]int64
	bytes int64
}

func (r *dropReport) count() int64 { return r.byQoS[0] + r.byQoS[1] + r.byQoS[2] }

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
	timer    *time.Timer      // closes the socket if the flush takes too long
	taken    atomic.Uint64    // writes taken, for paceHook
	onDrop   func(dropReport) // called without q.mu for the messages a write lost
	aliases  bool             // the client takes topic aliases
	waiters  int              // writes waiting for room
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

// Write queues p and returns at once. If p does not fit in the budget,
// its live messages are dropped and the rest waits for room (see the top
// of the file).
func (c *clientConn) Write(p []byte) (int, error) {
	q := &c.wq
	q.mu.Lock()
	if err := q.writable(); err != nil {
		q.mu.Unlock()
		return 0, err
	}
	q.taken.Add(1)
	whole := len(p)
	if q.held == 0 && !q.flushing && c.direct != nil {
		// Nothing queued: what the socket takes at once goes now.
		n, err := c.direct.write(p)
		if err != nil {
			q.fail(err)
			q.mu.Unlock()
			_ = c.closeConn()
			return n, err
		}
		if n == len(p) {
			q.mu.Unlock()
			return n, nil
		}
		p = p[n:] // fits: the queue is empty
	}
	if q.fits(len(p), 0) {
		q.put(c, p)
		q.mu.Unlock()
		return whole, nil
	}
	kept, lost, publishes := splitLive(p, q.aliases)
	slack := controlSlack
	if publishes {
		slack = 0
	}
	for len(kept) > 0 && !q.fits(len(kept), slack) {
		q.waiters++
		q.room.Wait()
		q.waiters--
		if err := q.writable(); err != nil {
			q.mu.Unlock()
			return 0, err
		}
	}
	if len(kept) > 0 {
		q.put(c, kept)
	}
	onDrop := q.onDrop
	q.mu.Unlock()
	if lost.count() > 0 && onDrop != nil {
		onDrop(lost)
	}
	return whole, nil
}

// fail breaks the stream: what is queued is dropped, every write fails
// (q.mu held).
func (q *writeQueue) fail(err error) {
	if q.err == nil {
		q.err = err
		q.release(q.chunks)
		q.chunks = nil
	}
	q.room.Broadcast()
}

// waitRoom waits until a write of about n bytes fits in the budget;
// false if the queue is closed or broken first.
func (q *writeQueue) waitRoom(n int) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.writable() == nil && !q.fits(n, 0) {
		q.room.Wait()
	}
	return q.writable() == nil
}

// writable returns why nothing can be written, if anything (q.mu held).
func (q *writeQueue) writable() error {
	if q.err != nil {
		return q.err
	}
	if q.closing {
		return net.ErrClosed
	}
	return nil
}

// fits reports whether a write of n bytes fits in the budget plus slack
// (q.mu held). Anything fits in an empty queue.
func (q *writeQueue) fits(n, slack int) bool {
	need := q.need(n)
	return need == 0 || q.held == 0 || q.held+need <= q.qs.limit+slack
}

// put queues p and makes sure a goroutine writes it out (q.mu held).
func (q *writeQueue) put(c *clientConn, p []byte) {
	if need := q.need(len(p)); need > 0 {
		q.grow(need)
	}
	last := q.chunks[len(q.chunks)-1]
	*last = append(*last, p...)
	if !q.flushing {
		q.flushing = true
		q.qs.flushers.Add(1)
		go c.flush()
	}
}

// splitLive splits a write (whole MQTT packets, one or several: mochi
// batches packets while its channel is not empty) into the packets to
// keep and the live messages to drop: PUBLISH packets neither retained
// nor duplicate, nor introducing a topic alias (with aliases). It reports
// whether a kept packet is a PUBLISH that may not go over the budget.
// Bytes that do not parse as whole packets are all kept.
func splitLive(p []byte, aliases bool) (kept []byte, lost dropReport, publishes bool) {
	var out []byte // nil while nothing is dropped: kept is p itself
	rest := p
	for len(rest) > 0 {
		size, ok := packetLength(rest)
		if !ok {
			return p, dropReport{}, true
		}
		pk := rest[:size]
		rest = rest[size:]
		typ, dup, qos, retain := pk[0]>>4, pk[0]&0x08 != 0, (pk[0]>>1)&3, pk[0]&1 != 0
		live := typ == packets.Publish && !dup && !retain && qos <= 2
		if live && aliases && setsAlias(pk, qos) {
			live = false // kept, within the slack of control packets
		} else if !live && typ == packets.Publish {
			publishes = true
		}
		if !live {
			if out != nil {
				out = append(out, pk...)
			}
			continue
		}
		if out == nil {
			out = append(make([]byte, 0, len(p)-size), p[:len(p)-len(rest)-size]...)
		}
		lost.byQoS[qos]++
		lost.bytes += int64(size)
	}
	if out == nil {
		return p, lost, publishes
	}
	return out, lost, publishes
}

// setsAlias reports whether an MQTT 5 PUBLISH packet carries both a topic
// name and a Topic Alias property: it introduces (or changes) the alias.
// A packet that does not parse is taken to.
func setsAlias(pk []byte, qos byte) bool {
	i := 1
	for i < len(pk) && pk[i]&0x80 != 0 { // remaining length
		i++
	}
	i++
	if i+2 > len(pk) {
		return true
	}
	topic := int(pk[i])<<8 | int(pk[i+1])
	if topic == 0 {
		return false // uses an alias, introduces none
	}
	i += 2 + topic
	if qos > 0 {
		i += 2 // packet id
	}
	if i > len(pk) {
		return true
	}
	n, w := uvarint(pk[i:])
	if w == 0 {
		return true
	}
	props := pk[i+w:]
	if n > len(props) {
		return true
	}
	props = props[:n]
	for len(props) > 0 {
		id := props[0]
		props = props[1:]
		var skip int
		switch id {
		case 0x23: // topic alias
			return true
		case 0x01: // payload format indicator
			skip = 1
		case 0x02: // message expiry interval
			skip = 4
		case 0x03, 0x08, 0x09: // content type, response topic, correlation data
			if len(props) < 2 {
				return true
			}
			skip = 2 + (int(props[0])<<8 | int(props[1]))
		case 0x26: // user property: two strings
			if len(props) < 2 {
				return true
			}
			k := 2 + (int(props[0])<<8 | int(props[1]))
			if len(props) < k+2 {
				return true
			}
			skip = k + 2 + (int(props[k])<<8 | int(props[k+1]))
		case 0x0B: // subscription identifier
			_, w := uvarint(props)
			if w == 0 {
				return true
			}
			skip = w
		default:
			return true
		}
		if skip > len(props) {
			return true
		}
		props = props[skip:]
	}
	return false
}

// uvarint decodes an MQTT variable byte integer: the value and its width
// (0: not one).
func uvarint(b []byte) (v, width int) {
	mult := 1
	for i := 0; i < len(b) && i < 4; i++ {
		v += int(b[i]&0x7f) * mult
		if b[i]&0x80 == 0 {
			return v, i + 1
		}
		mult *= 128
	}
	return 0, 0
}

// packetLength returns the size of the packet p starts with, if p holds
// it whole.
func packetLength(p []byte) (size int, ok bool) {
	if len(p) < 2 {
		return 0, false
	}
	body, w := uvarint(p[1:])
	if w == 0 {
		return 0, false
	}
	size = 1 + w + body
	return size, size <= len(p)
}

// blocked reports whether the connection's writer cannot take a message
// now: the queue holds its budget (the message would be dropped), a write
// waits for room, or the queue is closed or broken.
func (q *writeQueue) blocked() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.writable() != nil || q.waiters > 0 || (q.held > 0 && q.held+writeChunk > q.qs.limit)
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
		if err != nil {
			q.fail(err)
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

// cutWrites makes writes to the socket, also one in progress, fail after
// d: for a client that is being disconnected and may not read.
func (c *clientConn) cutWrites(d time.Duration) {
	t := time.Now().Add(d)
	if ws, ok := c.Conn.(*wsConn); ok {
		ws.cutWrites(t)
		return
	}
	_ = c.Conn.SetWriteDeadline(t)
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
