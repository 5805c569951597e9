package e2e

import (
	"fmt"
	"testing"

	"github.com/eclipse/paho.golang/paho"
)

// TestMQTTPubackReasonCode checks the acknowledgement of accepted MQTT 5
// QoS 1 and QoS 2 publishes, with and without publish properties: the
// reason code is 0x00 (success) — the only success code a PUBACK may carry
// besides 0x10 (no matching subscribers) — and the acknowledgement does
// not echo the publish's user properties back.
func TestMQTTPubackReasonCode(t *testing.T) {
	t.Parallel()
	n := startMQTTNode(t, "ROOST_AUTHN__ENABLE=false")
	sub := mustV5(t, n.MQTT, mqttClientID("sub"), "", "")
	sub.MustSubscribe(2, "ack/#")
	c := mustV5(t, n.MQTT, mqttClientID("pub"), "", "")
	cases := []struct {
		name  string
		qos   byte
		props *paho.PublishProperties
	}{
		{"qos1 no properties", 1, nil},
		{"qos1 user property", 1, &paho.PublishProperties{User: paho.UserProperties{{Key: "trace", Value: "abc"}}}},
		{"qos1 content type", 1, &paho.PublishProperties{ContentType: "text/plain"}},
		{"qos2 no properties", 2, nil},
		{"qos2 user property", 2, &paho.PublishProperties{User: paho.UserProperties{{Key: "trace", Value: "abc"}}}},
	}
	for i, tc := range cases {
		ctx, cancel := mqttCtx()
		r, err := c.c.Publish(ctx, &paho.Publish{Topic: fmt.Sprintf("ack/%d", i), QoS: tc.qos, Payload: []byte("x"), Properties: tc.props})
		cancel()
		if r == nil {
			t.Fatalf("%s: no acknowledgement: %v", tc.name, err)
		}
		if r.ReasonCode != rcSuccess {
			t.Errorf("%s: acknowledged with reason code 0x%02X, want 0x00", tc.name, r.ReasonCode)
		}
		if r.Properties != nil && len(r.Properties.User) > 0 {
			t.Errorf("%s: acknowledgement echoes the publish's user properties %v", tc.name, r.Properties.User)
		}
	}
	// All were delivered, in order, with their properties.
	got := sub.Expect(len(cases))
	for i, m := range got {
		if want := fmt.Sprintf("ack/%d", i); m.Topic != want {
			t.Errorf("delivery %d: %s, want %s", i, m.Topic, want)
		}
	}
	if p := got[1].Properties; p == nil || len(p.User) != 1 || p.User[0] != (paho.UserProperty{Key: "trace", Value: "abc"}) {
		t.Errorf("user property not delivered: %+v", p)
	}
}
