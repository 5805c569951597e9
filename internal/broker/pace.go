package broker

import (
	"fmt"
	"reflect"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
)

// Pacing publishers to a client's writer.
//
// mochi delivers a message on the publisher's goroutine by a send into
// the client's outbound channel that does not wait (publishToClient): when
// the channel is full, the message is dropped. The client's writer
// goroutine empties the channel into the write queue (write_queue.go),
// which takes a burst as fast as memory copies go; but on a busy machine
// the scheduler can leave the writer unscheduled for longer than the
// publisher needs to fill MaxPendingWrites slots (a publisher whose
// socket holds a burst never waits for it), and messages were dropped
// with the write queue empty.
//
// So, before mochi queues a message for a client (OnACLCheck for reading,
// the last hook mochi calls before the send), paceHook waits while the
// channel is nearly full and the writer is only waiting for CPU: the
// publisher yields to the writer instead of overrunning it. It does not
// wait for a writer that is blocked: its write queue holds its budget (a
// client that does not read: the queue drops, dropHook counts), it waits
// for room there, or it is held until a connecting client's session is
// set up (queue_order.go); nor, whatever the reason, once the writer has
// taken nothing for paceStall, nor again until it takes something; and no
// publisher waits longer than paceStall for one message (publishers that
// race for the room a writer makes could keep one of them waiting).
// (With a 500 ms limit on any writer, one burst test run on the busy
// 2-core machine still lost 75 of 200,000 messages.) Nothing changes order: every
// message still goes through mochi's channel, and the publisher, its
// socket unread meanwhile, is slowed down like any TCP sender.
//
// mochi does not export the channel; its length is read by reflection
// (outboundProbe, checked in New: without it there is no pacing).

// paceStall is how long a publisher waits for a writer that takes
// nothing.
const paceStall = 5 * time.Second

// outboundProbe reads the length of a client's outbound channel.
type outboundProbe struct{ index []int }

func newOutboundProbe() (*outboundProbe, error) {
	state, ok := reflect.TypeOf(mqtt.Client{}).FieldByName("State")
	if !ok {
		return nil, fmt.Errorf("mqtt.Client has no field State")
	}
	out, ok := state.Type.FieldByName("outbound")
	if !ok || out.Type.Kind() != reflect.Chan {
		return nil, fmt.Errorf("mqtt.ClientState has no channel outbound")
	}
	return &outboundProbe{index: append(append([]int(nil), state.Index...), out.Index...)}, nil
}

// len returns the packets in cl's outbound channel and its capacity.
func (p *outboundProbe) len(cl *mqtt.Client) (n, capacity int) {
	ch := reflect.ValueOf(cl).Elem().FieldByIndex(p.index)
	if ch.IsNil() {
		return 0, 0
	}
	return ch.Len(), ch.Cap()
}

type paceHook struct {
	mqtt.HookBase
	b     *Broker
	probe *outboundProbe
}

func (h *paceHook) ID() string { return "roost-pace" }

func (h *paceHook) Provides(b byte) bool { return b == mqtt.OnACLCheck }

// OnACLCheck paces the delivery to cl and abstains: mochi allows what any
// hook allows, so authzHook, after this one, decides.
func (h *paceHook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	if f := h.b.beforeDelivery.Load(); f != nil && !write {
		(*f)(cl, topic)
	}
	if !write && !cl.Net.Inline {
		if st := connState(cl); st != nil {
			h.pace(cl, st)
		}
	}
	return false
}

// pace waits while cl's outbound channel is nearly full and its writer is
// taking messages (see the top of the file).
func (h *paceHook) pace(cl *mqtt.Client, st *clientConn) {
	n, capacity := h.probe.len(cl)
	// Room for a few publishers that pass the check together.
	high := max(capacity-capacity/8, 1)
	if n < high {
		return
	}
	taken := st.wq.taken.Load()
	if st.paceStuck.Load() == taken+1 {
		return // gave up on this writer, which has taken nothing since
	}
	wait := 20 * time.Microsecond
	start := time.Now()
	since := start
	for n >= high {
		if cl.Closed() || h.b.ctx.Err() != nil || st.hold.Load() != nil || st.wq.blocked() {
			return
		}
		if t := st.wq.taken.Load(); t != taken {
			taken, since = t, time.Now()
		} else if time.Since(since) > paceStall {
			st.paceStuck.Store(taken + 1)
			return
		}
		if time.Since(start) > paceStall {
			return
		}
		time.Sleep(wait)
		wait = min(2*wait, 2*time.Millisecond)
		n, _ = h.probe.len(cl)
	}
}
