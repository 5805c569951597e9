package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// bannedNode starts a node with users alice and mallory (password "pw").
func bannedNode(t *testing.T) *node {
	t.Helper()
	n := startMQTTNode(t)
	n.mustCtl("users", "add", "alice", "pw")
	n.mustCtl("users", "add", "mallory", "pw")
	return n
}

// connackBoth connects with MQTT 5 and 3.1.1 as clientID/user and returns
// both CONNACK codes.
func connackBoth(t *testing.T, n *node, clientID, user string) (v5, v3 byte) {
	t.Helper()
	v5 = v5ConnackCode(t, n.MQTT, v5Options{ClientID: clientID, Username: user, Password: "pw", CleanStart: true})
	v3 = v3ConnackCode(t, v3Options{Broker: tcpURL(n.MQTT), ClientID: clientID, Username: user, Password: "pw", CleanSession: true})
	return v5, v3
}

func wantRefused(t *testing.T, n *node, what, clientID, user string) {
	t.Helper()
	if v5, v3 := connackBoth(t, n, clientID, user); v5 != rcV5Banned || v3 != rcV3NotAuthorized {
		t.Errorf("%s: CONNACK MQTT 5 0x%02X (want 0x8A banned), 3.1.1 0x%02X (want 0x05 not authorized)", what, v5, v3)
	}
}

func wantAccepted(t *testing.T, n *node, what, clientID, user string) {
	t.Helper()
	if v5, v3 := connackBoth(t, n, clientID, user); v5 != rcSuccess || v3 != rcSuccess {
		t.Errorf("%s: CONNACK MQTT 5 0x%02X, 3.1.1 0x%02X, want 0x00", what, v5, v3)
	}
}

type banJSON struct {
	Kind    string `json:"kind"`
	Value   string `json:"value"`
	Reason  string `json:"reason"`
	By      string `json:"by"`
	Until   string `json:"until"`
	Expired bool   `json:"expired"`
}

func listBans(t *testing.T, n *node) map[string]banJSON {
	t.Helper()
	var bans []banJSON
	mqttCtlJSON(n, &bans, "banned", "list")
	m := map[string]banJSON{}
	for _, b := range bans {
		m[b.Kind+":"+b.Value] = b
	}
	return m
}

// TestMQTTBannedClientIDAndUsername bans a client id and a username:
// both are refused at CONNECT (MQTT 5 0x8A, 3.1.1 0x05) with the right
// password while others connect; the bans are listed with reason and who
// banned; `banned del` lifts each.
func TestMQTTBannedClientIDAndUsername(t *testing.T) {
	t.Parallel()
	n := bannedNode(t)
	n.mustCtl("banned", "add", "--clientid", "evil-device", "--reason", "flooding")
	n.mustCtl("banned", "add", "--username", "mallory", "--reason", "abuse")

	bans := listBans(t, n)
	if b := bans["clientid:evil-device"]; b.Reason != "flooding" || b.By == "" || b.Until != "" || b.Expired {
		t.Errorf("banned list clientid:evil-device = %+v, want reason flooding, a banner, no expiry", b)
	}
	if b := bans["username:mallory"]; b.Reason != "abuse" || b.Expired {
		t.Errorf("banned list username:mallory = %+v, want reason abuse", b)
	}

	wantRefused(t, n, "banned client id evil-device (user alice)", "evil-device", "alice")
	wantRefused(t, n, "banned username mallory", mqttClientID("m"), "mallory")
	wantAccepted(t, n, "alice with another client id", mqttClientID("a"), "alice")
	wantAccepted(t, n, "client id evil-device-2 (prefix of nothing banned)", "evil-device-2", "alice")

	n.mustCtl("banned", "del", "clientid", "evil-device")
	wantAccepted(t, n, "evil-device after banned del", "evil-device", "alice")
	wantRefused(t, n, "mallory, still banned", mqttClientID("m"), "mallory")
	n.mustCtl("banned", "del", "username", "mallory")
	wantAccepted(t, n, "mallory after banned del", mqttClientID("m"), "mallory")
	if bans := listBans(t, n); len(bans) != 0 {
		t.Errorf("banned list after del: %+v, want empty", bans)
	}
}

// TestMQTTBannedPeerhost bans the clients' address 127.0.0.1, then the
// block 127.0.0.0/8: every client is refused while a ban is in force and
// accepted once it is lifted; a ban of another block refuses nobody.
func TestMQTTBannedPeerhost(t *testing.T) {
	t.Parallel()
	n := bannedNode(t)
	for _, host := range []string{"127.0.0.1", "127.0.0.0/8"} {
		n.mustCtl("banned", "add", "--peerhost", host, "--reason", "test")
		wantRefused(t, n, "peerhost ban "+host, mqttClientID("p"), "alice")
		// The control socket is not an MQTT client: it still works.
		n.mustCtl("banned", "del", "peerhost", host)
		wantAccepted(t, n, "after lifting peerhost ban "+host, mqttClientID("p"), "alice")
	}
	n.mustCtl("banned", "add", "--peerhost", "10.0.0.0/8")
	n.mustCtl("banned", "add", "--peerhost", "127.0.0.2")
	wantAccepted(t, n, "peerhost bans of other addresses", mqttClientID("p"), "alice")
}

// TestMQTTBannedMosquitto checks a banned client id with mosquitto_sub.
func TestMQTTBannedMosquitto(t *testing.T) {
	t.Parallel()
	sub := mosquittoBin(t, "mosquitto_sub")
	n := bannedNode(t)
	n.mustCtl("banned", "add", "--clientid", "mosq-banned")
	h, p := mqttHostPort(t, n.MQTT)
	out, err := runMosquitto(t, sub, "-h", h, "-p", p, "-i", "mosq-banned", "-u", "alice", "-P", "pw", "-t", "x", "-C", "1", "-W", "10")
	if err == nil || !strings.Contains(strings.ToLower(out), "not authori") {
		t.Errorf("mosquitto_sub (3.1.1) with a banned client id: %v, output %q; want a refusal \"not authorised\"", err, out)
	}
	out, err = runMosquitto(t, sub, "-h", h, "-p", p, "-V", "mqttv5", "-i", "mosq-banned", "-u", "alice", "-P", "pw", "-t", "x", "-C", "1", "-W", "10")
	if err == nil || !strings.Contains(strings.ToLower(out), "banned") {
		t.Errorf("mosquitto_sub (MQTT 5) with a banned client id: %v, output %q; want a refusal \"banned\"", err, out)
	}
}

// TestMQTTBannedExpiry checks bans with an end. A ban whose --until is
// in the past is refused by ctl (as EMQX refuses to create an expired
// ban) and bans nobody. A ban of 3s refuses the client until it ends, and
// then the client connects (the ban is listed as expired until the
// cleaner deletes it).
func TestMQTTBannedExpiry(t *testing.T) {
	t.Parallel()
	n := bannedNode(t)
	past := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	out, errOut, err := n.ctl("banned", "add", "--clientid", "old-ban", "--until", past)
	if err == nil {
		t.Errorf("ctl banned add --until %s (in the past) succeeded: %s", past, out)
	} else if !strings.Contains(errOut, "until") || !strings.Contains(errOut, "past") {
		t.Errorf("ctl banned add --until in the past: stderr %q, want it to name until and say it is in the past", errOut)
	}
	if b, ok := listBans(t, n)["clientid:old-ban"]; ok && !b.Expired {
		t.Errorf("a ban that ended an hour ago is listed as in force: %+v", b)
	}
	wantAccepted(t, n, "client id of a ban that ended an hour ago", "old-ban", "alice")

	n.mustCtl("banned", "add", "--clientid", "short-ban", "--until", "3s")
	n.mustCtl("banned", "add", "--username", "mallory", "--until", "3s")
	wantRefused(t, n, "client id with a ban of 3s", "short-ban", "alice")
	wantRefused(t, n, "username with a ban of 3s", mqttClientID("m"), "mallory")
	b := listBans(t, n)["clientid:short-ban"]
	until, err := time.Parse(time.RFC3339Nano, b.Until)
	if err != nil {
		t.Fatalf("banned list: until %q of the 3s ban is not RFC 3339: %v", b.Until, err)
	}
	// (until is kept to the second)
	if d := time.Until(until); d > 3*time.Second {
		t.Fatalf("ban --until 3s ends in %s, want at most 3s", d)
	}

	mqttEventually(t, 10*time.Second, "client with an expiring ban accepted", func() bool {
		c, ca, _ := dialV5(t, n.MQTT, v5Options{ClientID: "short-ban", Username: "alice", Password: "pw", CleanStart: true})
		if c != nil {
			c.Disconnect()
		}
		if ca != nil && ca.ReasonCode == rcSuccess {
			if time.Now().Before(until) {
				t.Errorf("client accepted at %s, before its ban ended at %s", time.Now().Format(time.RFC3339Nano), b.Until)
			}
			return true
		}
		if ca == nil || ca.ReasonCode != rcV5Banned {
			t.Fatalf("client with an expiring ban: CONNACK %s, want 0x8A until it ends, then 0x00", connackString(ca))
		}
		return false
	})
	wantAccepted(t, n, "client id after its 3s ban ended", "short-ban", "alice")
	wantAccepted(t, n, "username after its 3s ban ended", mqttClientID("m"), "mallory")
	if b, ok := listBans(t, n)["clientid:short-ban"]; ok && !b.Expired {
		t.Errorf("ended ban listed as not expired: %+v", b)
	}
}

// TestMQTTBannedKicksConnected checks that banning a connected client
// disconnects it: MQTT 5 gets DISCONNECT, 3.1.1 loses its connection; and
// that it cannot come back.
func TestMQTTBannedKicksConnected(t *testing.T) {
	t.Parallel()
	n := bannedNode(t)
	disc := make(chan *paho.Disconnect, 1)
	conn5 := mustV5WithServerDisconnect(t, n, "kick-5", disc)
	c3 := mustV3(t, n.MQTT, "kick-3", "mallory", "pw")

	n.mustCtl("banned", "add", "--clientid", "kick-5")
	n.mustCtl("banned", "add", "--username", "mallory")
	// paho reports a server DISCONNECT from a goroutine of its own, maybe
	// after the connection is closed: wait for the report itself.
	select {
	case d := <-disc:
		if d.ReasonCode != 0x98 && d.ReasonCode != rcV5Banned {
			t.Errorf("MQTT 5 client banned while connected: DISCONNECT 0x%02X, want 0x98 (administrative action) or 0x8A", d.ReasonCode)
		}
	case <-time.After(mqttWait):
		select {
		case <-conn5.Done():
			t.Errorf("MQTT 5 client banned while connected: connection closed without DISCONNECT")
		default:
			t.Errorf("MQTT 5 client banned while connected: still connected after %s", mqttWait)
		}
	}
	select {
	case <-conn5.Done():
	case <-time.After(mqttWait):
		t.Errorf("MQTT 5 client banned while connected: connection not closed within %s", mqttWait)
	}
	mqttEventually(t, mqttWait, "3.1.1 client of a banned user disconnected", func() bool { return !c3.c.IsConnectionOpen() })
	wantRefused(t, n, "kicked client id reconnecting", "kick-5", "alice")
	wantRefused(t, n, "kicked user reconnecting", "kick-3", "mallory")
}

func mustV5WithServerDisconnect(t *testing.T, n *node, clientID string, disc chan *paho.Disconnect) *paho.Client {
	t.Helper()
	conn, err := dialTCP(n.MQTT)
	if err != nil {
		t.Fatal(err)
	}
	c := paho.NewClient(paho.ClientConfig{Conn: conn, OnServerDisconnect: func(d *paho.Disconnect) {
		select {
		case disc <- d:
		default:
		}
	}})
	ctx, cancel := mqttCtx()
	defer cancel()
	if _, err := c.Connect(ctx, &paho.Connect{ClientID: clientID, CleanStart: true, KeepAlive: 30,
		Username: "alice", UsernameFlag: true, Password: []byte("pw"), PasswordFlag: true}); err != nil {
		t.Fatalf("connect %s: %v", clientID, err)
	}
	t.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}) })
	return c
}
