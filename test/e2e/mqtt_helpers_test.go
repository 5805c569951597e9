package e2e

// Helpers for the MQTT end-to-end tests (mqtt_*_test.go): real clients
// (paho.golang for MQTT 5, paho.mqtt.golang for 3.1.1, mosquitto_pub/sub)
// against a real roost process.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
	pahov3 "github.com/eclipse/paho.mqtt.golang"
	"github.com/gorilla/websocket"
)

// mqttWait bounds every single MQTT exchange (CONNECT, SUBSCRIBE, a
// message expected to arrive) in these tests.
const mqttWait = 10 * time.Second

// MQTT 5 reason codes and MQTT 3.1.1 return codes the tests check.
const (
	rcSuccess             = 0x00
	rcV5BadUserOrPassword = 0x86
	rcV5NotAuthorized     = 0x87
	rcV5Banned            = 0x8A
	rcV3BadUserOrPassword = 0x04
	rcV3NotAuthorized     = 0x05
	rcV3SubFailure        = 0x80
)

var clientSeq atomic.Int64

// uniqueID returns a client id unique within the test run.
func mqttClientID(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, os.Getpid(), clientSeq.Add(1))
}

// ---------------------------------------------------------------- MQTT 5

// dialTCP opens a TCP connection for paho.golang (thread-safe writes).
func dialTCP(addr string) (net.Conn, error) {
	conn, err := net.DialTimeout("tcp", addr, mqttWait)
	if err != nil {
		return nil, err
	}
	return packets.NewThreadSafeConn(conn), nil
}

// mqttCtx bounds one MQTT exchange.
func mqttCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), mqttWait)
}

// v5Client is a connected paho.golang client and the messages it received.
type v5Client struct {
	t    *testing.T
	c    *paho.Client
	msgs chan *paho.Publish
}

// v5Options builds a CONNECT packet.
type v5Options struct {
	ClientID      string
	Username      string // sent when non-empty
	Password      string // sent when Username is non-empty or PasswordSet
	PasswordSet   bool
	CleanStart    bool
	SessionExpiry uint32 // 0: property not sent
}

// dialV5 connects an MQTT 5 client. It returns the CONNACK (when one
// came) and the error of the connect attempt; on success the client is
// disconnected at the end of the test.
func dialV5(t *testing.T, addr string, o v5Options) (*v5Client, *paho.Connack, error) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, mqttWait)
	if err != nil {
		return nil, nil, err
	}
	return connectV5(t, conn, o)
}

// connectV5 runs CONNECT over an established connection.
func connectV5(t *testing.T, conn net.Conn, o v5Options) (*v5Client, *paho.Connack, error) {
	t.Helper()
	msgs := make(chan *paho.Publish, 4096)
	c := paho.NewClient(paho.ClientConfig{
		Conn: packets.NewThreadSafeConn(conn),
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){
			func(pr paho.PublishReceived) (bool, error) {
				select {
				case msgs <- pr.Packet:
				default:
					t.Errorf("client %s: message buffer full", o.ClientID)
				}
				return true, nil
			},
		},
		PacketTimeout: mqttWait,
	})
	cp := &paho.Connect{ClientID: o.ClientID, CleanStart: o.CleanStart, KeepAlive: 30}
	if o.Username != "" {
		cp.Username, cp.UsernameFlag = o.Username, true
	}
	if o.Username != "" || o.PasswordSet {
		cp.Password, cp.PasswordFlag = []byte(o.Password), true
	}
	if o.SessionExpiry > 0 {
		se := o.SessionExpiry
		cp.Properties = &paho.ConnectProperties{SessionExpiryInterval: &se}
	}
	ctx, cancel := context.WithTimeout(context.Background(), mqttWait)
	defer cancel()
	ca, err := c.Connect(ctx, cp)
	if err != nil {
		conn.Close()
		return nil, ca, err
	}
	cl := &v5Client{t: t, c: c, msgs: msgs}
	t.Cleanup(cl.Disconnect)
	return cl, ca, nil
}

// mustV5 connects with clean start and fails the test unless CONNACK is 0.
func mustV5(t *testing.T, addr, clientID, user, pass string) *v5Client {
	t.Helper()
	c, ca, err := dialV5(t, addr, v5Options{ClientID: clientID, Username: user, Password: pass, CleanStart: true})
	if err != nil {
		t.Fatalf("MQTT 5 connect %s (user %q): %v (connack %s)", clientID, user, err, connackString(ca))
	}
	return c
}

func connackString(ca *paho.Connack) string {
	if ca == nil {
		return "none"
	}
	return fmt.Sprintf("0x%02X", ca.ReasonCode)
}

// v5ConnackCode connects and returns the CONNACK reason code, failing the
// test if no CONNACK came. A successful connection is closed at once.
func v5ConnackCode(t *testing.T, addr string, o v5Options) byte {
	t.Helper()
	c, ca, err := dialV5(t, addr, o)
	if ca == nil {
		t.Fatalf("MQTT 5 connect %s (user %q): no CONNACK: %v", o.ClientID, o.Username, err)
	}
	if c != nil {
		c.Disconnect()
	}
	return ca.ReasonCode
}

// Disconnect sends DISCONNECT (reason 0) and waits for the client to stop.
func (c *v5Client) Disconnect() {
	_ = c.c.Disconnect(&paho.Disconnect{ReasonCode: 0})
	select {
	case <-c.c.Done():
	case <-time.After(mqttWait):
	}
}

// Subscribe subscribes to filters at qos and returns the SUBACK reason
// codes (failing the test only when no SUBACK came).
func (c *v5Client) Subscribe(qos byte, filters ...string) []byte {
	c.t.Helper()
	s := &paho.Subscribe{}
	for _, f := range filters {
		s.Subscriptions = append(s.Subscriptions, paho.SubscribeOptions{Topic: f, QoS: qos})
	}
	ctx, cancel := context.WithTimeout(context.Background(), mqttWait)
	defer cancel()
	sa, err := c.c.Subscribe(ctx, s)
	if sa == nil {
		c.t.Fatalf("subscribe %v: no SUBACK: %v", filters, err)
	}
	return sa.Reasons
}

// MustSubscribe subscribes and fails the test unless every filter was
// granted qos.
func (c *v5Client) MustSubscribe(qos byte, filters ...string) {
	c.t.Helper()
	got := c.Subscribe(qos, filters...)
	want := bytes.Repeat([]byte{qos}, len(filters))
	if !bytes.Equal(got, want) {
		c.t.Fatalf("subscribe %v at QoS %d: SUBACK %s, want %s", filters, qos, hexBytes(got), hexBytes(want))
	}
}

// Publish publishes p and returns the PUBACK reason code for QoS 1 (0 for
// QoS 0). The error of paho (set for reason codes >= 0x80) is ignored:
// the reason code is what tests check.
func (c *v5Client) Publish(p *paho.Publish) byte {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), mqttWait)
	defer cancel()
	r, err := c.c.Publish(ctx, p)
	if p.QoS == 0 {
		if err != nil {
			c.t.Fatalf("publish %s: %v", p.Topic, err)
		}
		return 0
	}
	if r == nil {
		c.t.Fatalf("publish %s QoS %d: no acknowledgement: %v", p.Topic, p.QoS, err)
	}
	return r.ReasonCode
}

// MustPublish publishes and fails the test unless it was acknowledged
// with success.
func (c *v5Client) MustPublish(topic string, qos byte, retain bool, payload []byte) {
	c.t.Helper()
	if rc := c.Publish(&paho.Publish{Topic: topic, QoS: qos, Retain: retain, Payload: payload}); rc != rcSuccess {
		c.t.Fatalf("publish %s QoS %d: reason code 0x%02X, want 0x00", topic, qos, rc)
	}
}

// Expect waits for n messages and returns them, failing the test if they
// do not arrive within mqttWait of each other.
func (c *v5Client) Expect(n int) []*paho.Publish {
	c.t.Helper()
	var out []*paho.Publish
	for len(out) < n {
		select {
		case m := <-c.msgs:
			out = append(out, m)
		case <-time.After(mqttWait):
			c.t.Fatalf("got %d of %d expected messages within %s: %s", len(out), n, mqttWait, v5Topics(out))
		}
	}
	return out
}

// UntilMarker returns every message received up to (not including) the
// first one on markerTopic, failing the test if the marker does not come.
// Messages published before the marker by the same client are delivered
// before it, so this proves that they were not delivered without waiting
// for a timeout.
func (c *v5Client) UntilMarker(markerTopic string) []*paho.Publish {
	c.t.Helper()
	var out []*paho.Publish
	for {
		select {
		case m := <-c.msgs:
			if m.Topic == markerTopic {
				return out
			}
			out = append(out, m)
		case <-time.After(mqttWait):
			c.t.Fatalf("marker on %s not received within %s; got %s", markerTopic, mqttWait, v5Topics(out))
		}
	}
}

// NoneQueued fails the test if a message is waiting in the client's buffer.
func (c *v5Client) NoneQueued() {
	c.t.Helper()
	select {
	case m := <-c.msgs:
		c.t.Fatalf("unexpected message on %s: %q", m.Topic, m.Payload)
	default:
	}
}

func v5Topics(ms []*paho.Publish) string {
	s := make([]string, len(ms))
	for i, m := range ms {
		s[i] = fmt.Sprintf("%s=%q", m.Topic, m.Payload)
	}
	return "[" + strings.Join(s, ", ") + "]"
}

func hexBytes(b []byte) string {
	s := make([]string, len(b))
	for i, x := range b {
		s[i] = fmt.Sprintf("0x%02X", x)
	}
	return "[" + strings.Join(s, " ") + "]"
}

// ---------------------------------------------------------------- MQTT 3.1.1

// v3Client is a connected paho.mqtt.golang (MQTT 3.1.1) client; every
// message it receives (from any subscription, including ones restored from
// a persistent session) lands in msgs.
type v3Client struct {
	t              *testing.T
	c              pahov3.Client
	msgs           chan pahov3.Message
	sessionPresent bool // from the CONNACK
}

type v3Options struct {
	Broker       string // tcp://host:port or ws://host:port/path
	ClientID     string
	Username     string
	Password     string
	CleanSession bool
}

// dialV3 connects a 3.1.1 client and returns the CONNACK return code (as
// paho.mqtt.golang reports it) and the error.
func dialV3(t *testing.T, o v3Options) (*v3Client, byte, error) {
	t.Helper()
	msgs := make(chan pahov3.Message, 4096)
	opts := pahov3.NewClientOptions().AddBroker(o.Broker).SetClientID(o.ClientID).
		SetProtocolVersion(4).SetCleanSession(o.CleanSession).
		SetAutoReconnect(false).SetConnectRetry(false).
		SetConnectTimeout(mqttWait).SetWriteTimeout(mqttWait).SetKeepAlive(30 * time.Second).
		SetOrderMatters(true).
		SetDefaultPublishHandler(func(_ pahov3.Client, m pahov3.Message) {
			select {
			case msgs <- m:
			default:
				t.Errorf("client %s: message buffer full", o.ClientID)
			}
		})
	if o.Username != "" {
		opts.SetUsername(o.Username).SetPassword(o.Password)
	}
	c := pahov3.NewClient(opts)
	tok := c.Connect()
	if !tok.WaitTimeout(mqttWait + 2*time.Second) {
		return nil, 0xFF, errors.New("MQTT 3.1.1 connect: timed out")
	}
	rc := tok.(*pahov3.ConnectToken).ReturnCode()
	if err := tok.Error(); err != nil {
		return nil, rc, err
	}
	cl := &v3Client{t: t, c: c, msgs: msgs, sessionPresent: tok.(*pahov3.ConnectToken).SessionPresent()}
	t.Cleanup(cl.Disconnect)
	return cl, rc, nil
}

func tcpURL(addr string) string { return "tcp://" + addr }

// mustV3 connects a clean-session 3.1.1 client and fails the test unless
// it was accepted.
func mustV3(t *testing.T, addr, clientID, user, pass string) *v3Client {
	t.Helper()
	c, rc, err := dialV3(t, v3Options{Broker: tcpURL(addr), ClientID: clientID, Username: user, Password: pass, CleanSession: true})
	if err != nil {
		t.Fatalf("MQTT 3.1.1 connect %s (user %q): %v (return code 0x%02X)", clientID, user, err, rc)
	}
	return c
}

// v3ConnackCode connects and returns the CONNACK return code; a successful
// connection is closed at once.
func v3ConnackCode(t *testing.T, o v3Options) byte {
	t.Helper()
	c, rc, _ := dialV3(t, o)
	if c != nil {
		c.Disconnect()
	}
	return rc
}

func (c *v3Client) Disconnect() {
	if c.c.IsConnectionOpen() {
		c.c.Disconnect(100)
	}
}

// Subscribe subscribes to one filter and returns the granted QoS / 0x80.
func (c *v3Client) Subscribe(filter string, qos byte) byte {
	c.t.Helper()
	tok := c.c.Subscribe(filter, qos, nil)
	if !tok.WaitTimeout(mqttWait) {
		c.t.Fatalf("subscribe %s: no SUBACK within %s", filter, mqttWait)
	}
	if err := tok.Error(); err != nil {
		c.t.Fatalf("subscribe %s: %v", filter, err)
	}
	res := tok.(*pahov3.SubscribeToken).Result()
	code, ok := res[filter]
	if !ok {
		c.t.Fatalf("subscribe %s: SUBACK without a code for it: %v", filter, res)
	}
	return code
}

func (c *v3Client) MustSubscribe(filter string, qos byte) {
	c.t.Helper()
	if got := c.Subscribe(filter, qos); got != qos {
		c.t.Fatalf("subscribe %s at QoS %d: SUBACK 0x%02X", filter, qos, got)
	}
}

// Publish publishes and waits for the acknowledgement (QoS > 0) or the
// write (QoS 0); it fails the test on error.
func (c *v3Client) Publish(topic string, qos byte, retain bool, payload []byte) {
	c.t.Helper()
	tok := c.c.Publish(topic, qos, retain, payload)
	if !tok.WaitTimeout(mqttWait) {
		c.t.Fatalf("publish %s QoS %d: not acknowledged within %s", topic, qos, mqttWait)
	}
	if err := tok.Error(); err != nil {
		c.t.Fatalf("publish %s QoS %d: %v", topic, qos, err)
	}
}

func (c *v3Client) Expect(n int) []pahov3.Message {
	c.t.Helper()
	var out []pahov3.Message
	for len(out) < n {
		select {
		case m := <-c.msgs:
			out = append(out, m)
		case <-time.After(mqttWait):
			c.t.Fatalf("got %d of %d expected messages within %s: %s", len(out), n, mqttWait, v3Topics(out))
		}
	}
	return out
}

func (c *v3Client) UntilMarker(markerTopic string) []pahov3.Message {
	c.t.Helper()
	var out []pahov3.Message
	for {
		select {
		case m := <-c.msgs:
			if m.Topic() == markerTopic {
				return out
			}
			out = append(out, m)
		case <-time.After(mqttWait):
			c.t.Fatalf("marker on %s not received within %s; got %s", markerTopic, mqttWait, v3Topics(out))
		}
	}
}

func v3Topics(ms []pahov3.Message) string {
	s := make([]string, len(ms))
	for i, m := range ms {
		s[i] = fmt.Sprintf("%s=%q", m.Topic(), m.Payload())
	}
	return "[" + strings.Join(s, ", ") + "]"
}

// ---------------------------------------------------------------- node helpers

// startNode starts a node with the extra env vars and returns it.
func startMQTTNode(t *testing.T, env ...string) *node {
	t.Helper()
	n := newNode(t)
	n.Env = append(n.Env, env...)
	n.Start()
	return n
}

// restart stops the node with SIGTERM (which must exit 0) and starts it
// again with the same data dir, ports and env.
func restartMQTTNode(n *node) {
	n.t.Helper()
	if err := n.Stop(); err != nil {
		n.t.Fatalf("roost stop (SIGTERM): %v, want exit 0\n%s", err, n.Logs())
	}
	n.Start()
}

// ctlJSON runs a ctl command with --output json and decodes its stdout.
func mqttCtlJSON(n *node, v any, args ...string) {
	n.t.Helper()
	out := n.mustCtl(append([]string{"--output", "json"}, args...)...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		n.t.Fatalf("roost ctl %s: output is not the expected JSON: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// eventually polls cond every 50ms until it holds or d passes.
func mqttEventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true within %s", what, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ---------------------------------------------------------------- mosquitto

// mosquittoBin returns the path of a mosquitto client, skipping the test
// when it is not installed.
func mosquittoBin(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not installed (Debian package mosquitto-clients; .ci/run installs it): %v", name, err)
	}
	return p
}

// runMosquitto runs a mosquitto client with a deadline and returns its
// combined output and exit error.
func runMosquitto(t *testing.T, bin string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*mqttWait)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	return string(out), err
}

// hostPort splits a listener address for mosquitto's -h/-p flags.
func mqttHostPort(t *testing.T, addr string) (string, string) {
	t.Helper()
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return h, p
}

// ---------------------------------------------------------------- WebSocket

// dialWS opens an MQTT-over-WebSocket connection (subprotocol "mqtt") to
// url and returns it as a byte-stream net.Conn for paho.golang, and the
// HTTP status of the upgrade answer (0 when there was none).
func dialWS(url string) (net.Conn, int, error) {
	d := *websocket.DefaultDialer
	d.Subprotocols = []string{"mqtt"}
	d.HandshakeTimeout = mqttWait
	ws, resp, err := d.Dial(url, nil)
	status := 0
	if resp != nil {
		status = resp.StatusCode
	}
	if err != nil {
		return nil, status, err
	}
	if ws.Subprotocol() != "mqtt" {
		ws.Close()
		return nil, status, fmt.Errorf("websocket subprotocol %q, want \"mqtt\"", ws.Subprotocol())
	}
	return &wsConn{Conn: ws}, status, nil
}

// wsConn carries the MQTT byte stream in binary WebSocket messages.
type wsConn struct {
	*websocket.Conn
	wmu sync.Mutex
	rmu sync.Mutex
	r   io.Reader
}

func (c *wsConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *wsConn) Read(p []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	for {
		if c.r == nil {
			_, r, err := c.NextReader()
			if err != nil {
				return 0, err
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if err == io.EOF {
			c.r = nil
			if n > 0 {
				return n, nil
			}
			continue
		}
		return n, err
	}
}

func (c *wsConn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}
