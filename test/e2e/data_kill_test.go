package e2e

import (
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDataImportKillMidImport kills (-9) the node running a large
// --replace import while it stages the records: the cluster keeps the old
// data — never part of the new — on the survivors and on the killed node
// once it is back; the same import then runs to completion and every
// node has exactly the new data.
func TestDataImportKillMidImport(t *testing.T) {
	t.Parallel()
	nodes := startCluster(t, 3)
	for i := range 6 {
		nodes[i%3].mustCtl("users", "add", fmt.Sprintf("old-%d", i), "pw")
	}
	nodes[1].mustCtl("acl", "add", "--all", "--topic", "old/#", "--action", "all", "--permission", "deny")
	old := waitConverged(t, nodes)

	// 120k users and 2k ACL rules: staged over many raft entries.
	const users, rules = 120000, 2000
	file := filepath.Join(shortTempDir(t), "big.json")
	e := newExportWriter(t, file, 1)
	e.table("users")
	for i := range users {
		e.record(userRec(fmt.Sprintf("big-%06d", i)))
	}
	e.table("acl")
	for i := range rules {
		e.record(fmt.Sprintf(`{"v":1,"id":%d,"kind":"username","value":"big-%06d","topic":"t/%d/#","action":"all","permission":"allow","created_at":"2025-01-01T00:00:00Z"}`, i+1, i, i))
	}
	e.close(t, nil, "")

	importer := nodes[0]
	cmd := exec.Command(roostBin, "ctl", "data", "import", file, "--replace")
	cmd.Env = importer.env()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	mqttEventually(t, 60*time.Second, "the import staging", func() bool {
		return strings.Contains(importer.Logs(), "import: staging")
	})
	time.Sleep(150 * time.Millisecond) // some records staged, surely not all
	importer.Kill()
	if err := cmd.Wait(); err == nil {
		t.Fatalf("the import succeeded although its node was killed:\n%s", out.String())
	}
	if strings.Contains(importer.Logs(), "import: committed") {
		t.Log("note: the commit landed before the kill")
	}

	survivors := waitConverged(t, nodes[1:])
	importer.Start()
	afterRestart := waitConverged(t, nodes)
	if survivors == old {
		// The restarted node removes the stage it left behind at once.
		mqttEventually(t, 20*time.Second, "the abandoned stage removed", func() bool {
			return strings.Contains(importer.Logs(), "removing the stage of an import this node did not finish")
		})
	}

	// Run the import to completion, through a follower: the records are
	// forwarded to the leader in bounded entries.
	var via *node
	for _, m := range clusterStatus(nodes[0]) {
		for _, n := range nodes {
			if m.Address == n.Cluster && m.Role != "leader" {
				via = n
			}
		}
	}
	if via == nil {
		t.Fatalf("no follower in %+v", clusterStatus(nodes[0]))
	}
	res := via.mustCtl("data", "import", file, "--replace")
	if !strings.Contains(res, "committed at raft index") {
		t.Fatalf("second import:\n%s", res)
	}
	t.Logf("second import, through a follower:\n%s", res)
	newData := waitConverged(t, nodes)
	if newData == old {
		t.Fatal("the completed import changed nothing")
	}
	for what, d := range map[string]string{"survivors after the kill": survivors, "all nodes after the restart": afterRestart} {
		if d != old && d != newData {
			t.Errorf("%s hold neither the old nor the new data (a mix):\n%s\nold: %s\nnew: %s", what, d, old, newData)
		}
	}
	var dg digestOut
	mqttCtlJSON(nodes[2], &dg, "data", "digest")
	for _, tb := range dg.Tables {
		if (tb.Table == "users" && tb.Count != users) || (tb.Table == "acl" && tb.Count != rules) {
			t.Errorf("after the import: %s has %d records", tb.Table, tb.Count)
		}
	}
	t.Logf("survivors held the %s data, the restarted cluster the %s data", which(survivors, old), which(afterRestart, old))
}

func which(d, old string) string {
	if d == old {
		return "old"
	}
	return "new"
}
