package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// TestDataDisasterRecoveryDrill is the EMQX guidance done for real: a
// 3-node cluster with users of several hash algorithms, ACL rules, bans,
// retained messages with binary payloads and MQTT 5 properties and an API
// key is exported; the whole cluster is stopped and its data deleted; a
// new, empty 3-node cluster is started and the file imported on one
// node. Every node then holds exactly the source's data (equal digests)
// and behaves as the source did: original passwords log in, ACL rules
// allow and deny as before, the banned client is refused, retained
// messages arrive byte for byte, and the API key works.
func TestDataDisasterRecoveryDrill(t *testing.T) {
	t.Parallel()
	// Each source node hashes new passwords with another algorithm.
	hashes := []string{"sha256", "bcrypt", "pbkdf2"}
	src := make([]*node, 3)
	for i := range src {
		src[i] = newClusterNode(t, fmt.Sprintf("src%d", i+1), "ROOST_AUTHN__PASSWORD_HASH="+hashes[i])
		src[i].Start()
	}
	for _, n := range src[1:] {
		n.mustCtl("cluster", "join", src[0].Cluster)
	}
	waitClusterHealthy(t, src, 3)

	users := map[string]string{} // user → password
	for i, u := range []string{"alice", "bob", "carol"} {
		users[u] = u + "-pw-" + hashes[i]
		src[i].mustCtl("users", "add", u, users[u])
	}
	src[0].mustCtl("users", "add", "root", "root-pw", "--superuser")
	src[2].mustCtl("users", "add", "--clientid", "dev-7", "dev-pw")
	addACL(t, src[1],
		aclRule{username("alice"), "alice/#", "all", "allow"},
		aclRule{allUsers(), "secret/#", "subscribe", "deny"},
		aclRule{username("bob"), "ro/#", "subscribe", "deny"},
	)
	src[2].mustCtl("banned", "add", "--clientid", "evil-client", "--reason", "drill")
	var key struct {
		Name   string `json:"name"`
		Secret string `json:"secret"`
	}
	if err := json.Unmarshal([]byte(src[0].mustCtl("apikeys", "create", "drill-key", "--output", "json")), &key); err != nil || key.Secret == "" {
		t.Fatalf("apikeys create: %v", err)
	}

	bin := make([]byte, 0, 600)
	for i := range 600 {
		bin = append(bin, byte(i*31))
	}
	corr := []byte{0, 0xff, 1, 0xfe}
	props := paho.UserProperties{{Key: "k", Value: "v1"}, {Key: "k", Value: "v2"}, {Key: "ünï", Value: "☃"}}
	pub := mustV5(t, src[1].MQTT, mqttClientID("drill-pub"), "root", "root-pw")
	for _, p := range []*paho.Publish{
		{Topic: "drill/bin", QoS: 1, Retain: true, Payload: bin, Properties: &paho.PublishProperties{
			ContentType: "application/x-drill", CorrelationData: corr, ResponseTopic: "drill/reply",
			PayloadFormat: ptr(byte(0)), MessageExpiry: ptr(uint32(86400)), User: props}},
		{Topic: "drill/text", QoS: 0, Retain: true, Payload: []byte("héllo ✓"), Properties: &paho.PublishProperties{
			ContentType: "text/plain", PayloadFormat: ptr(byte(1))}},
	} {
		pub.Publish(p) // retained whatever the reason code (see TestMQTTRetainedAcrossRestart)
	}
	pub.Disconnect()
	mqttEventually(t, 10*time.Second, "retained messages stored", func() bool {
		return len(listRetained(t, src[0])) == 2
	})
	source := waitConverged(t, src)

	// Export on a follower (src3 joined src1, which leads).
	file := filepath.Join(shortTempDir(t), "drill.json.gz")
	var exp struct {
		Filename  string         `json:"filename"`
		RaftIndex uint64         `json:"raft_index"`
		Counts    map[string]int `json:"counts"`
		LocalFile string         `json:"local_file"`
	}
	if err := json.Unmarshal([]byte(src[2].mustCtl("data", "export", "--file", file, "--output", "json")), &exp); err != nil {
		t.Fatal(err)
	}
	if exp.Counts["users"] != 5 || exp.Counts["acl"] != 3 || exp.Counts["retained"] != 2 || exp.Counts["api_keys"] != 1 || exp.RaftIndex == 0 || exp.LocalFile != file {
		t.Fatalf("export: %+v", exp)
	}
	if _, err := os.Stat(filepath.Join(src[2].DataDir, "backup", exp.Filename)); err != nil {
		t.Fatalf("the export is not in the node's backup dir: %v", err)
	}

	// The disaster: every node and all its data gone.
	for _, n := range src {
		n.Kill()
		if err := os.RemoveAll(n.DataDir); err != nil {
			t.Fatal(err)
		}
	}

	// A new, empty cluster; the import on one node repopulates all.
	dst := startCluster(t, 3)
	if d := tablesDigest(dst[0]); d == source {
		t.Fatal("the new cluster already has the source's data")
	}
	out := dst[1].mustCtl("data", "import", file)
	if !strings.Contains(out, "committed at raft index") || !strings.Contains(out, "users     5") {
		t.Fatalf("import output:\n%s", out)
	}
	if got := waitConverged(t, dst); got != source {
		t.Fatalf("digests after import:\n%s\nwant (source):\n%s", got, source)
	}

	for _, n := range dst {
		// Original passwords, each hashed with another algorithm.
		for u, pw := range users {
			if rc := v5ConnackCode(t, n.MQTT, v5Options{ClientID: mqttClientID(u), Username: u, Password: pw, CleanStart: true}); rc != rcSuccess {
				t.Errorf("%s: %s with the original password: CONNACK 0x%02X", n.Cluster, u, rc)
			}
			if rc := v5ConnackCode(t, n.MQTT, v5Options{ClientID: mqttClientID(u), Username: u, Password: pw + "x", CleanStart: true}); rc != rcV5BadUserOrPassword {
				t.Errorf("%s: %s with a wrong password: CONNACK 0x%02X", n.Cluster, u, rc)
			}
		}
		// ACL rules as before: the broker's mirrors reload after the
		// import's commit (a reset), so allow them a moment.
		alice := mustV5(t, n.MQTT, mqttClientID("alice"), "alice", users["alice"])
		mqttEventually(t, 5*time.Second, "ACL rules in force on "+n.Cluster, func() bool {
			rc := alice.Subscribe(1, "secret/x")
			return len(rc) == 1 && rc[0] == 0x87
		})
		if rc := alice.Subscribe(1, "alice/x"); rc[0] != 1 {
			t.Errorf("%s: alice/x for alice: SUBACK 0x%02X, want granted", n.Cluster, rc[0])
		}
		bob := mustV5(t, n.MQTT, mqttClientID("bob"), "bob", users["bob"])
		if rc := bob.Subscribe(1, "ro/x", "alice/x", "pub/x"); !bytes.Equal(rc, []byte{0x87, 1, 1}) {
			t.Errorf("%s: bob's subscriptions: SUBACK %s, want [0x87 0x01 0x01]", n.Cluster, hexBytes(rc))
		}
		// The banned client is refused.
		mqttEventually(t, 5*time.Second, "ban in force on "+n.Cluster, func() bool {
			return v5ConnackCode(t, n.MQTT, v5Options{ClientID: "evil-client", Username: "carol", Password: users["carol"], CleanStart: true}) == 0x8A
		})
		// Retained messages, byte for byte with their properties.
		sub := mustV5(t, n.MQTT, mqttClientID("drill-sub"), "root", "root-pw")
		var got []*paho.Publish
		mqttEventually(t, 5*time.Second, "retained messages on "+n.Cluster, func() bool {
			got = retainedOn(t, sub, "drill/#", "drill/zz-marker-"+fmt.Sprint(time.Now().UnixNano()))
			return len(got) == 2
		})
		b, tx := got[0], got[1]
		bp := b.Properties
		if b.Topic != "drill/bin" || !bytes.Equal(b.Payload, bin) || !b.Retain || b.QoS != 1 || bp == nil ||
			bp.ContentType != "application/x-drill" || !bytes.Equal(bp.CorrelationData, corr) || bp.ResponseTopic != "drill/reply" ||
			!slices.Equal(bp.User, props) || bp.MessageExpiry == nil || *bp.MessageExpiry > 86400 || *bp.MessageExpiry < 86000 {
			t.Errorf("%s: drill/bin after import: %d bytes (equal %v) retain %v qos %d props %+v", n.Cluster, len(b.Payload),
				bytes.Equal(b.Payload, bin), b.Retain, b.QoS, bp)
		}
		if tx.Topic != "drill/text" || string(tx.Payload) != "héllo ✓" || tx.Properties == nil || tx.Properties.ContentType != "text/plain" ||
			tx.Properties.PayloadFormat == nil || *tx.Properties.PayloadFormat != 1 {
			t.Errorf("%s: drill/text after import: %q %+v", n.Cluster, tx.Payload, tx.Properties)
		}
		// The API key works on the new cluster.
		if r := doAPI(t, n.API, apiCall{Method: "GET", Path: "/api/v1/status", BasicUser: key.Name, BasicPass: key.Secret}); r.Status != 200 {
			t.Errorf("%s: API key after import: %s", n.Cluster, r)
		}
	}
}
