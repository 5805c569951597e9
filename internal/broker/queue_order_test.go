package broker

import (
	"net"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/mochi-mqtt/server/v2/packets"
)

// collectOrdered reads n messages and returns their payloads.
func collectOrdered(c *v5Client, n int) []string {
	c.t.Helper()
	out := make([]string, 0, n)
	for len(out) < n {
		out = append(out, string(c.next().Payload))
	}
	return out
}

// collectDistinct reads messages until n distinct ones have come and
// returns them; a repeat of the one just before is skipped.
func collectDistinct(c *v5Client, n int) []string {
	c.t.Helper()
	out := make([]string, 0, n)
	for len(out) < n {
		p := string(c.next().Payload)
		if len(out) > 0 && out[len(out)-1] == p {
			continue
		}
		out = append(out, p)
	}
	return out
}

func seqStrings(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, strconv.Itoa(i))
	}
	return out
}

// Messages queued for a session come back in the order they were
// published [MQTT-4.6.0-1]: on a reconnect, with messages that were sent
// and not acknowledged before them, and across a restart.
func TestQueuedMessagesKeepOrder(t *testing.T) {
	t.Parallel()
	n := startNode(t, t.TempDir(), func(o *Options) { o.AuthnEnable = false })
	connect := func(manualAck bool) *v5Client {
		t.Helper()
		c, _, err := dialV5(t, n.tcp(), "ordered", v5Opts{sessionExpiry: 3600, manualAck: manualAck})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	c := connect(false)
	c.mustSub("ord/#", 1)
	c.close()
	pub := mustV5(t, n.tcp(), "pub", "", "")
	publish := func(from, to int) {
		for i := from; i < to; i++ {
			pub.mustPub("ord/x", strconv.Itoa(i), 1, false)
		}
	}

	publish(0, 100) // offline, mostly within one second
	c = connect(false)
	if got := collectOrdered(c, 100); !slices.Equal(got, seqStrings(0, 100)) {
		t.Fatalf("after a reconnect: %v", got)
	}
	eventually(t, "all acknowledged", func() bool {
		cl, ok := n.b.server.Clients.Get("ordered")
		return ok && cl.State.Inflight.Len() == 0
	})
	c.close()

	// Received and not acknowledged, then queued while offline, then a
	// restart: all of them, in order.
	c = connect(true)
	publish(100, 150)
	// A message delivered while the session is set up may come twice
	// (re-sent, then new: queue_order.go), never out of order.
	if got := collectDistinct(c, 50); !slices.Equal(got, seqStrings(100, 150)) {
		t.Fatalf("live: %v", got)
	}
	c.close()
	publish(150, 200)
	pub.close()
	n.restart()
	c = connect(false)
	if got := collectOrdered(c, 100); !slices.Equal(got, seqStrings(100, 200)) {
		t.Fatalf("after a restart: %v", got)
	}
	// And the temporary creation times of the re-send are gone.
	cl, _ := n.b.server.Clients.Get("ordered")
	for _, pk := range cl.State.Inflight.GetAll(false) {
		if pk.Created > time.Now().Unix()+1 {
			t.Errorf("inflight message %d has creation time %d, in the future", pk.PacketID, pk.Created)
		}
	}
}

// mochi re-sends by the low 16 bits of the creation second: messages
// created across a multiple of 65536 s, and messages of one second, come
// back in the order they were queued all the same.
func TestResendOrderAcrossSortKeyWrap(t *testing.T) {
	t.Parallel()
	n := startNode(t, t.TempDir(), func(o *Options) { o.AuthnEnable = false })
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	cl := n.b.server.NewClient(&clientConn{Conn: a, done: make(chan struct{})}, "tcp", "wrap", false)
	boundary := time.Now().Unix() &^ 0xffff
	created := []int64{boundary - 3, boundary - 2, boundary - 1, boundary, boundary, boundary + 1}
	ids := []uint16{300, 2, 150, 7, 9, 1}
	for i, id := range ids {
		pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1},
			TopicName: "w", Payload: []byte(strconv.Itoa(i)), PacketID: id, Created: created[i], ProtocolVersion: 5}
		cl.State.Inflight.Set(pk)
		n.b.order.record(cl.ID, &pk, true)
	}
	h := &orderHook{b: n.b}
	h.OnPacketEncode(cl, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connack}, SessionPresent: true})
	var got []string
	for _, pk := range cl.State.Inflight.GetAll(false) { // mochi's re-send order
		got = append(got, string(pk.Payload))
	}
	if !slices.Equal(got, seqStrings(0, len(ids))) {
		t.Errorf("re-send order %v, want the order queued", got)
	}
	h.OnSessionEstablished(cl, packets.Packet{})
	for i, id := range ids {
		if pk, _ := cl.State.Inflight.Get(id); pk.Created != created[i] {
			t.Errorf("message %d: creation time %d after the re-send, want %d back", i, pk.Created, created[i])
		}
	}
	if s, ok := n.b.order.lookup(cl.ID, 300); !ok || s.created != created[0] {
		t.Errorf("order slot of message 0: %+v %v", s, ok)
	}
}

func TestResendTimes(t *testing.T) {
	t.Parallel()
	const block = 0x10000
	for _, tc := range []struct {
		name      string
		now, max  int64
		n         int
		wantBelow bool // before now, so that messages arriving meanwhile sort after
	}{
		{"room below", 100*block + 5000, 0, 1000, true},
		{"block just started", 100*block + 10, 0, 1000, false},
		{"next second starts a block", 101*block - 1, 0, 10, false},
		{"age cap leaves no room", 100*block + 5000, 60, 1000, false},
		{"age cap leaves room", 100*block + 5000, 7200, 1000, true},
		{"room below, near the end of a block", 101*block - 100, 0, 500, true},
		{"block just started, some", 100*block + 300, 0, 500, false},
		{"most a session holds", 100*block + 65000, 0, 65535, false},
	} {
		base := resendTimes(tc.now, tc.max, tc.n)
		last := base + int64(tc.n) - 1
		if base/block != last/block {
			t.Errorf("%s: times %d..%d cross a block of 65536 s", tc.name, base, last)
		}
		below := last < tc.now-1
		if below != tc.wantBelow {
			t.Errorf("%s: times %d..%d, now %d: below now = %v, want %v", tc.name, base, last, tc.now, below, tc.wantBelow)
		}
		if below {
			for _, arrival := range []int64{tc.now - 1, tc.now, tc.now + 1} {
				if uint16(arrival) <= uint16(last) {
					t.Errorf("%s: a message created at %d sorts before the re-sent ones", tc.name, arrival)
				}
			}
			if tc.max > 0 && tc.now-base > tc.max-resendMargin {
				t.Errorf("%s: times from %d are within %ds of the age cap %d", tc.name, base, resendMargin, tc.max)
			}
		} else if base <= tc.now+1 {
			t.Errorf("%s: times from %d, want after now %d", tc.name, base, tc.now)
		}
	}
}

// A subscriber that reconnects again and again to a topic with a steady
// stream of QoS 1 messages gets them in order: messages sent again (not
// acknowledged before a disconnect, or also re-sent on a resume) may
// repeat earlier ones, never come before them, and none is lost (a
// publisher may deliver to the old connection while the new one takes the
// session over: handoff.go).
func TestQueuedOrderUnderLiveTraffic(t *testing.T) {
	t.Parallel()
	n := startNode(t, t.TempDir(), func(o *Options) { o.AuthnEnable = false })
	const total = 3000
	got := make(chan int, 100000)
	connect := func() *v5Client {
		t.Helper()
		c, _, err := dialV5(t, n.tcp(), "stream", v5Opts{sessionExpiry: 3600, msgBuffer: 100000})
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			for m := range c.msgs {
				i, err := strconv.Atoi(string(m.Payload))
				if err != nil {
					i = total // "end"
				}
				got <- i
			}
		}()
		return c
	}
	c := connect()
	c.mustSub("stream/x", 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		pub := mustV5(t, n.tcp(), "stream-pub", "", "")
		for i := range total {
			if _, err := pub.pub(&paho.Publish{Topic: "stream/x", Payload: []byte(strconv.Itoa(i)), QoS: 1}); err != nil {
				t.Errorf("publish %d: %v", i, err)
				return
			}
		}
		pub.mustPub("stream/x", "end", 1, false)
	}()
	for range 6 {
		time.Sleep(40 * time.Millisecond)
		c.close()
		time.Sleep(10 * time.Millisecond)
		c = connect()
	}
	<-done
	seen := make(map[int]bool, total+1)
	last := -1
	deadline := time.After(waitFor)
	for !seen[total] {
		select {
		case i := <-got:
			switch {
			case seen[i]:
			case i < last:
				t.Fatalf("got %d after %d", i, last)
			default:
				seen[i], last = true, i
			}
		case <-deadline:
			t.Fatalf("the end marker has not come (last %d)", last)
		}
	}
	if lost := total + 1 - len(seen); lost > 0 {
		t.Errorf("%d of %d messages lost in session takeovers", lost, total)
	}
}
