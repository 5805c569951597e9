package e2e

import (
	"net/http"
	"testing"
	"time"
)

// TestMQTTWebSocket checks the WebSocket listener (listeners.ws.default):
// it serves MQTT on any path — "/mqtt" (what EMQX and most browser clients
// use) and "/" both work — for 3.1.1 (paho.mqtt.golang, ws:// broker URL)
// and MQTT 5 (paho.golang over a gorilla/websocket connection, subprotocol
// "mqtt"); authentication applies there too; messages cross between
// WebSocket and TCP clients both ways; a plain HTTP request to the port is
// refused with an HTTP error.
func TestMQTTWebSocket(t *testing.T) {
	t.Parallel()
	n := startMQTTNode(t)
	n.mustCtl("users", "add", "web", "web-pw")

	tcp := mustV5(t, n.MQTT, mqttClientID("tcp"), "web", "web-pw")
	tcp.MustSubscribe(1, "ws/#")

	for _, path := range []string{"/mqtt", "/"} {
		url := "ws://" + n.WS + path

		// MQTT 3.1.1 over WebSocket.
		c3, rc, err := dialV3(t, v3Options{Broker: url, ClientID: mqttClientID("ws3"), Username: "web", Password: "web-pw", CleanSession: true})
		if err != nil {
			t.Fatalf("3.1.1 over %s: %v (0x%02X)", url, err, rc)
		}
		if got := v3ConnackCode(t, v3Options{Broker: url, ClientID: mqttClientID("ws3bad"), Username: "web", Password: "nope", CleanSession: true}); got != rcV3BadUserOrPassword {
			t.Errorf("3.1.1 over %s with a wrong password: CONNACK 0x%02X, want 0x04", url, got)
		}
		c3.MustSubscribe("tcp/#", 1)
		c3.Publish("ws/v3"+path, 1, false, []byte("from ws 3.1.1 "+path))
		if m := tcp.Expect(1)[0]; m.Topic != "ws/v3"+path || string(m.Payload) != "from ws 3.1.1 "+path {
			t.Errorf("TCP subscriber got %s=%q from the 3.1.1 WebSocket client", m.Topic, m.Payload)
		}
		tcp.MustPublish("tcp/to3", 1, false, []byte("to ws 3.1.1"))
		if m := c3.Expect(1)[0]; m.Topic() != "tcp/to3" || string(m.Payload()) != "to ws 3.1.1" {
			t.Errorf("3.1.1 WebSocket client got %s=%q from TCP", m.Topic(), m.Payload())
		}

		// MQTT 5 over WebSocket.
		conn, status, err := dialWS(url)
		if err != nil {
			t.Fatalf("WebSocket upgrade at %s: %v (HTTP %d)", url, err, status)
		}
		if status != http.StatusSwitchingProtocols {
			t.Errorf("WebSocket upgrade at %s: HTTP %d, want 101", url, status)
		}
		c5, ca, err := connectV5(t, conn, v5Options{ClientID: mqttClientID("ws5"), Username: "web", Password: "web-pw", CleanStart: true})
		if err != nil {
			t.Fatalf("MQTT 5 over %s: %v (%s)", url, err, connackString(ca))
		}
		c5.MustSubscribe(1, "tcp/#")
		c5.MustPublish("ws/v5"+path, 1, false, []byte{0, 1, 2, 0xff})
		if m := tcp.Expect(1)[0]; m.Topic != "ws/v5"+path || string(m.Payload) != "\x00\x01\x02\xff" {
			t.Errorf("TCP subscriber got %s=%q from the MQTT 5 WebSocket client", m.Topic, m.Payload)
		}
		tcp.MustPublish("tcp/to5", 1, false, []byte("to ws 5"))
		// c5 and c3 are both subscribed to tcp/#.
		if m := c5.Expect(1)[0]; m.Topic != "tcp/to5" || string(m.Payload) != "to ws 5" {
			t.Errorf("MQTT 5 WebSocket client got %s=%q from TCP", m.Topic, m.Payload)
		}
		if m := c3.Expect(1)[0]; m.Topic() != "tcp/to5" {
			t.Errorf("3.1.1 WebSocket client got %s, want tcp/to5", m.Topic())
		}
		conn, _, err = dialWS(url)
		if err != nil {
			t.Fatal(err)
		}
		if _, ca, _ := connectV5(t, conn, v5Options{ClientID: mqttClientID("ws5bad"), Username: "web", Password: "nope", CleanStart: true}); ca == nil || ca.ReasonCode != rcV5BadUserOrPassword {
			t.Errorf("MQTT 5 over %s with a wrong password: CONNACK %s, want 0x86", url, connackString(ca))
		}
		c3.Disconnect()
		c5.Disconnect()
	}

	// Plain HTTP (no upgrade) is not served.
	hc := &http.Client{Timeout: 5 * time.Second}
	resp, err := hc.Get("http://" + n.WS + "/mqtt")
	if err != nil {
		t.Fatalf("plain GET on the WebSocket port: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode < 400 {
		t.Errorf("plain GET on the WebSocket port: HTTP %d, want a 4xx refusal", resp.StatusCode)
	}
}
