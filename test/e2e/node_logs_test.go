package e2e

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestNodeLogKeysOnce: every line a node logs, at debug level, through a
// first start, a cluster join, MQTT traffic across the nodes, management
// calls, an export and import, a node backup and a stop, has each key
// once (no `node=… component=broker node=… component=mqtt`), and the
// lines of the node's parts name the node.
func TestNodeLogKeysOnce(t *testing.T) {
	t.Parallel()
	nodes := startCluster(t, 2, "ROOST_LOG__LEVEL=debug")
	a, b := nodes[0], nodes[1]

	a.mustCtl("users", "add", "logger", "l0gger-pw")
	a.mustCtl("acl", "add", "--username", "logger", "--topic", "deny/#", "--action", "all", "--permission", "deny")
	a.mustCtl("banned", "add", "--clientid", "log-evil", "--reason", "e2e")
	waitConverged(t, nodes)
	sub := mustV5(t, b.MQTT, mqttClientID("log-sub"), "logger", "l0gger-pw")
	sub.MustSubscribe(1, "logs/#")
	pub := mustV5(t, a.MQTT, mqttClientID("log-pub"), "logger", "l0gger-pw")
	mqttEventually(t, 10*time.Second, "route to b", func() bool {
		pub.MustPublish("logs/x", 1, false, []byte("probe"))
		return drainFor(sub, "logs/x")
	})
	pub.MustPublish("logs/retained", 1, true, []byte("kept"))
	if _, ca, err := dialV5(t, a.MQTT, v5Options{ClientID: mqttClientID("x"), Username: "logger", Password: "wrong", CleanStart: true}); err == nil {
		t.Fatalf("wrong password accepted: %s", connackString(ca))
	}
	pub.Disconnect()
	sub.Disconnect()
	a.mustCtl("data", "export", "-o", a.DataDir+"/../export.json")
	a.mustCtl("data", "import", a.DataDir+"/../export.json")
	a.mustCtl("backup", "create")
	for _, n := range nodes {
		if err := n.Stop(); err != nil {
			t.Fatalf("stop: %v\n%s", err, n.Logs())
		}
	}

	for i, n := range nodes {
		lines, withNode := 0, 0
		for _, line := range strings.Split(n.Logs(), "\n") {
			if !strings.HasPrefix(line, "time=") {
				continue
			}
			lines++
			keys, err := logKeys(line)
			if err != nil {
				t.Errorf("node %d: %v in log line\n%s", i+1, err, line)
				continue
			}
			seen := map[string]bool{}
			for _, k := range keys {
				if seen[k] {
					t.Errorf("node %d: key %q twice in log line\n%s", i+1, k, line)
				}
				seen[k] = true
			}
			if seen["node"] {
				withNode++
			}
		}
		if lines < 50 || withNode < lines*9/10 {
			t.Errorf("node %d: %d log lines, %d with node=; want many, nearly all naming the node\n%s", i+1, lines, withNode, n.Logs())
		}
	}
}

// logKeys returns the keys of one slog text line in order.
func logKeys(line string) ([]string, error) {
	var keys []string
	for s := line; s != ""; {
		s = strings.TrimLeft(s, " ")
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			return nil, fmt.Errorf("no key=value at %q", s)
		}
		keys = append(keys, s[:eq])
		s = s[eq+1:]
		if strings.HasPrefix(s, `"`) {
			q, err := strconv.QuotedPrefix(s)
			if err != nil {
				return nil, fmt.Errorf("bad quoted value at %q", s)
			}
			s = s[len(q):]
		} else if sp := strings.IndexByte(s, ' '); sp >= 0 {
			s = s[sp:]
		} else {
			s = ""
		}
	}
	return keys, nil
}
