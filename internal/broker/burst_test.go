package broker

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/mochi-mqtt/server/v2/packets"
)

// burstSub is a subscriber that holds its first message until released
// (its client stops reading the socket meanwhile), then counts what
// arrives and whether it arrives in order.
type burstSub struct {
	c        *paho.Client
	release  chan struct{}
	received atomic.Int64
	mu       sync.Mutex
	next     uint32 // the sequence number expected next
	disorder []string
}

// dialBurstClient connects a paho client. A subscriber (onMsg set) asks
// for a Receive Maximum of 1: paho then buffers one message, not 65535,
// so a handler that blocks stops its client reading the socket.
func dialBurstClient(t *testing.T, addr, id string, onMsg func(*paho.Publish)) *paho.Client {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, waitFor)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	cfg := paho.ClientConfig{Conn: conn, PacketTimeout: waitFor}
	if onMsg != nil {
		cfg.OnPublishReceived = []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			onMsg(pr.Packet)
			return true, nil
		}}
	}
	c := paho.NewClient(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	cp := &paho.Connect{ClientID: id, KeepAlive: 30, CleanStart: true}
	if onMsg != nil {
		one := uint16(1)
		cp.Properties = &paho.ConnectProperties{ReceiveMaximum: &one}
	}
	if _, err := c.Connect(ctx, cp); err != nil {
		t.Fatalf("connect %s: %v", id, err)
	}
	t.Cleanup(func() {
		_ = c.Disconnect(&paho.Disconnect{})
		select {
		case <-c.Done():
		case <-time.After(waitFor):
		}
	})
	return c
}

func (s *burstSub) observe(p *paho.Publish) {
	<-s.release
	seq := binary.BigEndian.Uint32(p.Payload)
	s.mu.Lock()
	if seq < s.next && len(s.disorder) < 5 { // a gap is a loss, counted below
		s.disorder = append(s.disorder, fmt.Sprintf("%d after %d", seq, s.next-1))
	}
	s.next = max(s.next, seq+1)
	s.mu.Unlock()
	s.received.Add(1)
}

// TestQoS0BurstDelivered: 10 publisher/subscriber pairs, 20,000 QoS 0
// messages each, published as fast as the publishers can while the
// subscribers do not read; then the subscribers drain. mochi alone keeps
// 1024 packets per client (max_pending_writes) and drops the rest; the
// write queue, bounded in bytes, keeps the burst and delivers all of it,
// in order per publisher.
func TestQoS0BurstDelivered(t *testing.T) {
	t.Parallel()
	const pairs = 10
	count, size := 20000, 64
	if v := os.Getenv("BURST_COUNT"); v != "" {
		count, _ = strconv.Atoi(v)
	}
	if v := os.Getenv("BURST_SIZE"); v != "" {
		size, _ = strconv.Atoi(v)
	}
	n := startNode(t, t.TempDir(), func(o *Options) { o.AuthnEnable = false })
	addr := n.tcp()

	subs := make([]*burstSub, pairs)
	for i := range subs {
		s := &burstSub{release: make(chan struct{})}
		s.c = dialBurstClient(t, addr, fmt.Sprintf("burst-sub-%d", i), s.observe)
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		_, err := s.c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{
			{Topic: fmt.Sprintf("burst/%d", i), QoS: 0}}})
		cancel()
		if err != nil {
			t.Fatalf("subscribe %d: %v", i, err)
		}
		subs[i] = s
	}
	// Publishers write pre-encoded PUBLISH packets as fast as the socket
	// takes them (a paho client under the race detector publishes about
	// 20,000 a second, too slow for a burst).
	pubs := make([]*rawPublisher, pairs)
	for i := range pubs {
		pubs[i] = dialRawPublisher(t, addr, fmt.Sprintf("burst-pub-%d", i))
	}
	began := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, pairs)
	for i, p := range pubs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.burst(fmt.Sprintf("burst/%d", i), count, size); err != nil {
				errs <- fmt.Errorf("publisher %d: %w", i, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	published := time.Since(began)
	for i := range subs {
		if cl, ok := n.b.server.Clients.Get(fmt.Sprintf("burst-sub-%d", i)); ok {
			held, peak := connState(cl).queued()
			t.Logf("sub %d: queue holds %d, peak %d", i, held, peak)
		}
	}
	for _, s := range subs {
		close(s.release)
	}

	// Drain: wait while deliveries make progress.
	total := func() int64 {
		var sum int64
		for _, s := range subs {
			sum += s.received.Load()
		}
		return sum
	}
	last, lastChange := total(), time.Now()
	for cur := last; cur < int64(pairs*count); cur = total() {
		if cur != last {
			last, lastChange = cur, time.Now()
		} else if time.Since(lastChange) > 3*time.Second {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	m := n.b.Metrics()
	t.Logf("published in %s, delivered %d of %d in %s; broker counted %d dropped",
		published.Round(time.Millisecond), total(), pairs*count, time.Since(began).Round(time.Millisecond), m.MessagesDropped)
	for i, s := range subs {
		s.mu.Lock()
		if got := s.received.Load(); got != int64(count) {
			t.Errorf("subscriber %d: received %d of %d messages", i, got, count)
		}
		if len(s.disorder) > 0 {
			t.Errorf("subscriber %d: out of order: %v", i, s.disorder)
		}
		s.mu.Unlock()
	}
	if m.MessagesDropped != 0 {
		t.Errorf("broker dropped %d messages", m.MessagesDropped)
	}
}

// rawPublisher is an MQTT 5 connection that writes packets encoded with
// mochi's codec: the fastest publisher there can be.
type rawPublisher struct {
	conn net.Conn
	r    *bufio.Reader
}

func dialRawPublisher(t *testing.T, addr, id string) *rawPublisher {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, waitFor)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	p := &rawPublisher{conn: conn, r: bufio.NewReader(conn)}
	var buf bytes.Buffer
	connect := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: 5,
		Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 30, ClientIdentifier: id}}
	if err := connect.ConnectEncode(&buf); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(waitFor))
	if _, err := conn.Write(buf.Bytes()); err != nil {
		t.Fatalf("%s: write CONNECT: %v", id, err)
	}
	if typ, err := p.readPacket(); err != nil || typ != packets.Connack {
		t.Fatalf("%s: want CONNACK, got packet type %d, %v", id, typ, err)
	}
	_ = conn.SetDeadline(time.Time{})
	return p
}

// readPacket reads one packet and returns its type.
func (p *rawPublisher) readPacket() (byte, error) {
	b, err := p.r.ReadByte()
	if err != nil {
		return 0, err
	}
	var n, shift int
	for {
		c, err := p.r.ReadByte()
		if err != nil {
			return 0, err
		}
		n |= int(c&0x7f) << shift
		if c&0x80 == 0 {
			break
		}
		shift += 7
	}
	if _, err := p.r.Discard(n); err != nil {
		return 0, err
	}
	return b >> 4, nil
}

// burst publishes count QoS 0 messages to topic, each payload starting
// with its sequence number, and returns once the broker has processed
// them all: it answers a PINGREQ sent after them.
func (p *rawPublisher) burst(topic string, count, size int) error {
	var buf bytes.Buffer
	for seq := range uint32(count) {
		payload := make([]byte, size)
		binary.BigEndian.PutUint32(payload, seq)
		pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish}, ProtocolVersion: 5,
			TopicName: topic, Payload: payload}
		if err := pk.PublishEncode(&buf); err != nil {
			return err
		}
	}
	ping := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}}
	if err := ping.PingreqEncode(&buf); err != nil {
		return err
	}
	_ = p.conn.SetDeadline(time.Now().Add(time.Minute))
	if _, err := p.conn.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	for {
		typ, err := p.readPacket()
		if err != nil {
			return fmt.Errorf("waiting for PINGRESP: %w", err)
		}
		if typ == packets.Pingresp {
			return nil
		}
	}
}
