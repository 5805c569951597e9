package e2e

// Node backups end to end (DESIGN §7): `roost ctl backup create` on a
// serving node, the offline `roost backup inspect|verify` and
// `roost restore`, with real processes of the real binary.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/eclipse/paho.golang/paho"
	"golang.org/x/crypto/bcrypt"
)

// loadRun is a QoS 1 publisher and a subscriber on one node, running
// until stop: it records when each message arrived.
type loadRun struct {
	pub, sub *v5Client
	stopc    chan struct{} // stops the publisher
	donec    chan struct{} // stops the subscriber's reader
	pubWG    sync.WaitGroup
	subWG    sync.WaitGroup
	sent     atomic.Int64
	pubErr   atomic.Value // error
	mu       sync.Mutex
	arrivals []time.Time
}

func startLoad(t *testing.T, addr, topic string) *loadRun {
	t.Helper()
	l := &loadRun{stopc: make(chan struct{}), donec: make(chan struct{})}
	l.sub = mustV5(t, addr, mqttClientID("load-sub"), "", "")
	l.sub.MustSubscribe(1, topic+"/#")
	l.pub = mustV5(t, addr, mqttClientID("load-pub"), "", "")
	l.pubWG.Add(1)
	l.subWG.Add(1)
	go func() {
		defer l.subWG.Done()
		for {
			select {
			case <-l.sub.msgs:
				l.mu.Lock()
				l.arrivals = append(l.arrivals, time.Now())
				l.mu.Unlock()
			case <-l.donec:
				return
			}
		}
	}()
	go func() {
		defer l.pubWG.Done()
		for i := 0; ; i++ {
			select {
			case <-l.stopc:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), mqttWait)
			r, err := l.pub.c.Publish(ctx, &paho.Publish{Topic: fmt.Sprintf("%s/%d", topic, i), QoS: 1, Payload: []byte(fmt.Sprint(i))})
			cancel()
			if err == nil && (r == nil || r.ReasonCode != 0) {
				err = fmt.Errorf("PUBACK %v", r)
			}
			if err != nil {
				l.pubErr.Store(fmt.Errorf("publish %d: %w", i, err))
				return
			}
			l.sent.Add(1)
			time.Sleep(2 * time.Millisecond)
		}
	}()
	return l
}

func (l *loadRun) received() []time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.arrivals)
}

// stopPublishing stops the publisher; the subscriber still counts what
// arrives.
func (l *loadRun) stopPublishing() {
	close(l.stopc)
	l.pubWG.Wait()
}

func (l *loadRun) stop() {
	close(l.donec)
	l.subWG.Wait()
}

// TestBackupUnderLoadRestoreAndCatchUp backs up node A of a 3-node
// cluster (leader or not) while a QoS 1 publisher and a subscriber run on
// it: no client is disconnected and messages keep
// flowing through the backup. The backup verifies, and its manifest is A
// at the digest of that moment. Then the cluster moves on, A is stopped,
// its data dir deleted and restored from the backup: the restored store is
// the backup's exactly, and started, A rejoins and catches up with what
// was written after the backup.
func TestBackupUnderLoadRestoreAndCatchUp(t *testing.T) {
	t.Parallel()
	nodes := startCluster(t, 3, "ROOST_AUTHN__ENABLE=false")
	// A is a follower: its applied index is its own, not the leader's.
	a := follower(t, nodes)
	var others []*node
	for _, n := range nodes {
		if n != a {
			others = append(others, n)
		}
	}
	b, c := others[0], others[1]
	dir := shortTempDir(t)

	// Data: 20k users (so the backup takes a moment), ACL, a ban, retained.
	mustWrite(t, b, "data", "import", writeUsersExport(t, dir, "bulk", 20000))
	for i := range 6 {
		mustWrite(t, nodes[i%3], "users", "add", fmt.Sprintf("before-%d", i), "pw")
	}
	mustWrite(t, c, "acl", "add", "--username", "before-0", "--topic", "secret/#", "--action", "all", "--permission", "deny")
	mustWrite(t, b, "banned", "add", "--clientid", "evil-client", "--reason", "e2e")
	rp := mustV5(t, b.MQTT, mqttClientID("ret"), "", "")
	for i := range 3 {
		rp.MustPublish(fmt.Sprintf("state/%d", i), 1, true, []byte(fmt.Sprint("v", i)))
	}
	rp.Disconnect()
	mqttEventually(t, 20*time.Second, "retained stored on every node", func() bool {
		for _, n := range nodes {
			if tableCount(n, "retained") != 3 {
				return false
			}
		}
		return true
	})
	waitConverged(t, nodes)
	aID, _ := readIdentity(t, a.DataDir)

	// Load on A, then the backup while it runs.
	load := startLoad(t, a.MQTT, "load")
	mqttEventually(t, 10*time.Second, "load flowing", func() bool { return len(load.received()) >= 50 })
	idxBefore, countsBefore := digestTables(a)
	local := filepath.Join(dir, "a.tar.zst")
	t0 := time.Now()
	res := createBackup(t, a, "--file", local)
	t1 := time.Now()
	idxAfter, countsAfter := digestTables(a)
	time.Sleep(300 * time.Millisecond)
	load.stopPublishing()
	t.Logf("backup of %s: %d bytes in %dms (read view %dms), ctl took %s; raft index %d",
		res.Name, res.Size, res.DurationMS, res.ViewMS, t1.Sub(t0).Round(time.Millisecond), res.RaftIndex)

	if err, _ := load.pubErr.Load().(error); err != nil {
		t.Errorf("the publisher failed during the backup: %v", err)
	}
	for what, cl := range map[string]*v5Client{"publisher": load.pub, "subscriber": load.sub} {
		select {
		case <-cl.c.Done():
			t.Errorf("the %s was disconnected", what)
		default:
		}
	}
	// Every acknowledged message arrives: nothing lost across the backup.
	mqttEventually(t, 10*time.Second, "every published message delivered", func() bool {
		return int64(len(load.received())) >= load.sent.Load()
	})
	load.stop()
	arr := load.received()
	during, maxGap := 0, time.Duration(0)
	var prev time.Time
	for _, at := range arr {
		if at.Before(t0) {
			prev = at
			continue
		}
		if at.After(t1.Add(300 * time.Millisecond)) {
			break
		}
		if !at.After(t1) {
			during++
		}
		if !prev.IsZero() && at.Sub(prev) > maxGap {
			maxGap = at.Sub(prev)
		}
		prev = at
	}
	t.Logf("load: %d messages sent, %d received; %d arrived during the backup (%s); longest gap around it %s",
		load.sent.Load(), len(arr), during, t1.Sub(t0).Round(time.Millisecond), maxGap.Round(time.Millisecond))
	if during == 0 {
		t.Errorf("no message arrived during the backup (%s)", t1.Sub(t0))
	}
	if maxGap > time.Second {
		t.Errorf("messages stalled for %s around the backup", maxGap)
	}

	// The backup: A's, at the digest of that moment, and sound.
	if res.NodeID != aID.NodeID || res.Node != aID.Name || res.LocalFile == "" {
		t.Errorf("backup create says node %s (%s), local file %q; want %s (%s)", res.Node, res.NodeID, res.LocalFile, aID.Name, aID.NodeID)
	}
	if out, errOut, err := roost(t, "backup", "verify", local); err != nil || !strings.Contains(out, "OK") {
		t.Fatalf("roost backup verify: %v\n%s%s", err, out, errOut)
	}
	m := inspectBackup(t, local)
	if m.NodeID != aID.NodeID || m.Node != aID.Name || m.ClusterID != aID.ClusterID || m.Format != "roost-node-backup" {
		t.Errorf("manifest: node %s (%s) cluster %s format %s", m.Node, m.NodeID, m.ClusterID, m.Format)
	}
	if m.Raft.Index != res.RaftIndex || m.Raft.Index < idxBefore || m.Raft.Index > idxAfter || len(m.Raft.Servers) != 3 {
		t.Errorf("manifest raft index %d (create said %d), digest index before %d after %d; %d servers",
			m.Raft.Index, res.RaftIndex, idxBefore, idxAfter, len(m.Raft.Servers))
	}
	if m.Tables["users"] != countsBefore["users"] || m.Tables["users"] != 20006 {
		t.Errorf("manifest users %d, digest %d, want 20006", m.Tables["users"], countsBefore["users"])
	}
	if idxBefore == idxAfter && (fmt.Sprint(m.Tables) != fmt.Sprint(countsBefore) || fmt.Sprint(countsBefore) != fmt.Sprint(countsAfter)) {
		t.Errorf("manifest tables %v, digest at the time %v", m.Tables, countsBefore)
	}
	if fmt.Sprint(res.Tables) != fmt.Sprint(m.Tables) {
		t.Errorf("create reported tables %v, manifest %v", res.Tables, m.Tables)
	}

	// The cluster moves on without A's backup.
	for i := range 10 {
		mustWrite(t, others[i%2], "users", "add", fmt.Sprintf("after-%d", i), "pw")
	}
	mustWrite(t, c, "banned", "del", "clientid", "evil-client")
	if err := a.Stop(); err != nil {
		t.Fatalf("stop A: %v", err)
	}
	mustWrite(t, b, "users", "add", "while-a-down", "pw")
	if err := os.RemoveAll(a.DataDir); err != nil {
		t.Fatal(err)
	}
	rep := restoreBackup(t, local, a.DataDir)
	if rep.RaftIndex != m.Raft.Index || rep.NodeID != aID.NodeID || rep.ClusterID != aID.ClusterID || rep.MovedAside != "" ||
		rep.ForceNewCluster || len(rep.Members) != 3 || fmt.Sprint(rep.Tables) != fmt.Sprint(m.Tables) {
		t.Errorf("restore report %+v, manifest index %d tables %v", rep, m.Raft.Index, m.Tables)
	}
	// Before A starts: its store is the backup's, byte for byte.
	for _, f := range []string{"store.db", "node.json", "sessions.db"} {
		if got, want := fileSHA256(t, filepath.Join(a.DataDir, f)), m.fileSHA("data/"+f); got != want {
			t.Errorf("restored %s: sha256 %s, the backup's is %s", f, got, want)
		}
	}
	if st, _ := leftovers(t, filepath.Dir(a.DataDir), filepath.Base(a.DataDir)); len(st) != 0 {
		t.Errorf("staging dirs left after a restore: %v", st)
	}

	a.Start()
	waitClusterHealthy(t, nodes, 3)
	waitConverged(t, nodes)
	if got := tableCount(a, "users"); got != 20006+11 {
		t.Errorf("A has %d users after catching up, want %d", got, 20006+11)
	}
	if got := tableCount(a, "banned"); got != 0 {
		t.Errorf("A still has %d bans: the delete after the backup did not reach it", got)
	}
	// A serves: the ACL of the backup applies and the retained messages are there.
	sub := mustV5(t, a.MQTT, mqttClientID("after"), "", "")
	sub.MustSubscribe(1, "state/#")
	if got := sub.Expect(3); len(got) != 3 {
		t.Fatalf("retained after restore: %v", v5Topics(got))
	}
}

// TestRestoreRefusesOtherNode restores node alpha's backup onto node
// bravo's data dir: refused (while bravo runs, and once it is stopped),
// with a message naming both nodes and pointing to data export/import;
// bravo's data dir is byte for byte what it was and nothing is created
// beside it.
func TestRestoreRefusesOtherNode(t *testing.T) {
	t.Parallel()
	a := newClusterNode(t, "alpha")
	b := newClusterNode(t, "bravo")
	a.Start()
	b.Start()
	a.mustCtl("users", "add", "alpha-user", "pw")
	b.mustCtl("users", "add", "bravo-user", "pw")
	res := createBackup(t, a)
	createBackup(t, b) // bravo's data dir has backups of its own
	aID, _ := readIdentity(t, a.DataDir)
	bID, _ := readIdentity(t, b.DataDir)

	_, errOut, err := roost(t, "restore", res.Path, "--data-dir", b.DataDir)
	if err == nil || !strings.Contains(errOut, "in use by a running roost") {
		t.Fatalf("restore onto a running node's data dir: %v\n%s", err, errOut)
	}
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	parent, base := filepath.Dir(b.DataDir), filepath.Base(b.DataDir)
	before, namesBefore := dirListing(t, b.DataDir), dirNames(t, parent)
	for _, extra := range [][]string{nil, {"--force-new-cluster"}, {"-o", "json"}} {
		args := append([]string{"restore", res.Path, "--data-dir", b.DataDir}, extra...)
		out, errOut, err := roost(t, args...)
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() == 0 {
			t.Fatalf("restore %v of alpha's backup onto bravo: %v\n%s%s", extra, err, out, errOut)
		}
		mustContain(t, fmt.Sprintf("stderr of restore %v", extra), errOut,
			`node "alpha"`, aID.NodeID, `node "bravo"`, bID.NodeID, "roost ctl data import", "unchanged")
		if got := dirListing(t, b.DataDir); got != before {
			t.Fatalf("restore %v changed bravo's data dir:\nbefore:\n%s\nafter:\n%s", extra, before, got)
		}
		if got := dirNames(t, parent); !slices.Equal(got, namesBefore) {
			t.Fatalf("restore %v left entries beside the data dir: %v, before %v", extra, got, namesBefore)
		}
	}
	// Without --data-dir, restore finds the data dir as roost start does
	// (here: ROOST_NODE__DATA_DIR): bravo's, refused the same way.
	if _, errOut, err := b.run("restore", res.Path); err == nil || !strings.Contains(errOut, b.DataDir) || !strings.Contains(errOut, `node "bravo"`) {
		t.Errorf("restore without --data-dir: %v\n%s", err, errOut)
	}
	if got := dirListing(t, b.DataDir); got != before {
		t.Fatalf("restore without --data-dir changed bravo's data dir")
	}
	if st, aside := leftovers(t, parent, base); len(st)+len(aside) != 0 {
		t.Fatalf("leftovers: %v %v", st, aside)
	}
	b.Start()
	var users []struct {
		UserID string `json:"user_id"`
	}
	mqttCtlJSON(b, &users, "users", "list")
	if len(users) != 1 {
		t.Fatalf("bravo's users after the refused restore: %+v", users)
	}
}

// TestBackupBadFiles feeds damaged, incomplete and encrypted backups to
// `roost backup verify` and `roost restore`: each fails with a message
// that says what is wrong, and the target data dir is unchanged. The
// good ones (plain, passphrase, age X25519 recipient) verify.
func TestBackupBadFiles(t *testing.T) {
	t.Parallel()
	n := newClusterNode(t, "solo")
	n.Start()
	n.mustCtl("users", "add", "keep", "keep-pw")
	dir := shortTempDir(t)
	plain := filepath.Join(dir, "plain.tar.zst")
	createBackup(t, n, "--file", plain)
	pass, wrong := filepath.Join(dir, "pass"), filepath.Join(dir, "wrong")
	writeFile(t, pass, "correct horse battery staple\n")
	writeFile(t, wrong, "incorrect horse\n")
	enc := filepath.Join(dir, "pass.tar.zst.age")
	if r := createBackup(t, n, "--passphrase-file", pass, "--file", enc); !r.Encrypted || !strings.HasSuffix(r.Name, ".tar.zst.age") {
		t.Errorf("passphrase backup: encrypted %v, name %s", r.Encrypted, r.Name)
	}
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	other, _ := age.GenerateX25519Identity()
	keyFile, otherKey := filepath.Join(dir, "key.txt"), filepath.Join(dir, "other.txt")
	writeFile(t, keyFile, "# e2e\n"+id.String()+"\n")
	writeFile(t, otherKey, other.String()+"\n")
	x := filepath.Join(dir, "x25519.tar.zst.age")
	createBackup(t, n, "--encrypt-to", id.Recipient().String(), "--file", x)
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}

	// The good ones.
	nid, _ := readIdentity(t, n.DataDir)
	for _, c := range [][]string{{plain}, {enc, "--passphrase-file", pass}, {x, "-i", keyFile}} {
		if out, errOut, err := roost(t, append([]string{"backup", "verify"}, c...)...); err != nil || !strings.Contains(out, ": OK:") {
			t.Errorf("verify %v: %v\n%s%s", c, err, out, errOut)
		}
	}
	if m := inspectBackup(t, x, "-i", keyFile); m.NodeID != nid.NodeID || m.Tables["users"] != 1 {
		t.Errorf("inspect of the X25519 backup: node %s users %d", m.NodeID, m.Tables["users"])
	}

	// extract unpacks every file as the manifest lists it; it refuses a
	// non-empty target, and a damaged backup leaves nothing behind.
	mPlain := inspectBackup(t, plain)
	exDir := filepath.Join(dir, "extracted")
	if out, errOut, err := roost(t, "backup", "extract", plain, exDir); err != nil {
		t.Fatalf("extract: %v\n%s%s", err, out, errOut)
	}
	for _, f := range mPlain.Files {
		if got := fileSHA256(t, filepath.Join(exDir, filepath.FromSlash(f.Path))); got != f.SHA256 {
			t.Errorf("extracted %s: sha256 %s, manifest %s", f.Path, got, f.SHA256)
		}
	}
	if _, errOut, err := roost(t, "backup", "extract", plain, exDir); err == nil || !strings.Contains(errOut, "not empty") {
		t.Errorf("extract into a non-empty dir: %v %s", err, errOut)
	}

	good, err := os.ReadFile(plain)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	flipped := slices.Clone(good)
	flipped[len(flipped)/2] ^= 0xff
	missing := filepath.Join(dir, "missing.tar.zst")
	rebuildWithout(t, plain, missing, "data/node.json")
	export := filepath.Join(dir, "export.json")
	e := newExportWriter(t, export, 1)
	e.table("users")
	e.record(userRec("x"))
	e.close(t, nil, "")

	parent, base := filepath.Dir(n.DataDir), filepath.Base(n.DataDir)
	before, namesBefore := dirListing(t, n.DataDir), dirNames(t, parent)
	cases := []struct {
		name string
		args []string // file and key flags
		want []string // any one of them, in stderr
	}{
		{"truncated", []string{write("trunc.tar.zst", good[:len(good)*2/3])}, []string{"truncated"}},
		{"cut in the header", []string{write("trunc2.tar.zst", good[:3])}, []string{"truncated"}},
		{"empty", []string{write("empty.tar.zst", nil)}, []string{"empty"}},
		{"flipped byte", []string{write("flip.tar.zst", flipped)}, []string{"corrupt", "sha256", "checksum"}},
		{"missing file", []string{missing}, []string{"data/node.json: listed in the manifest but missing"}},
		{"not a backup", []string{export}, []string{"not a roost node backup"}},
		{"passphrase, wrong", []string{enc, "--passphrase-file", wrong}, []string{"wrong key or passphrase"}},
		{"passphrase, none", []string{enc}, []string{"encrypted"}},
		{"passphrase, X25519 key given", []string{enc, "-i", keyFile}, []string{"wrong key or passphrase"}},
		{"X25519, other key", []string{x, "-i", otherKey}, []string{"wrong key or passphrase"}},
		{"X25519, none", []string{x}, []string{"encrypted"}},
	}
	check := func(name string, want []string, cmd []string) {
		out, errOut, err := roost(t, cmd...)
		if err == nil {
			t.Errorf("%s: roost %v succeeded:\n%s", name, cmd[:2], out)
			return
		}
		if !slices.ContainsFunc(want, func(w string) bool { return strings.Contains(errOut, w) }) {
			t.Errorf("%s: roost %v: stderr has none of %q:\n%s", name, cmd[:2], want, errOut)
		}
		if cmd[0] == "restore" && !strings.Contains(errOut, "unchanged") {
			t.Errorf("%s: restore does not say the data dir is unchanged:\n%s", name, errOut)
		}
	}
	// verify, inspect and extract only read the backup: run them side by
	// side (a few at a time: a passphrase costs 256 MiB of scrypt).
	var wg sync.WaitGroup
	sem := make(chan struct{}, 6)
	for _, c := range cases {
		exTo := filepath.Join(dir, "x-"+strings.NewReplacer(" ", "-", ",", "").Replace(c.name))
		for _, cmd := range [][]string{
			append([]string{"backup", "verify"}, c.args...),
			append([]string{"backup", "inspect"}, c.args...),
			append([]string{"backup", "extract", c.args[0], exTo}, c.args[1:]...),
		} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sem <- struct{}{}
				defer func() { <-sem }()
				check(c.name, c.want, cmd)
				if cmd[1] == "extract" {
					if _, err := os.Lstat(exTo); !os.IsNotExist(err) {
						t.Errorf("%s: the failed extract left %s behind: %v", c.name, exTo, err)
					}
				}
			}()
		}
	}
	wg.Wait()
	// Then each restore: refused, and the data dir is as it was.
	for _, c := range cases {
		check(c.name, c.want, append([]string{"restore", "--data-dir", n.DataDir}, c.args...))
		if got := dirListing(t, n.DataDir); got != before {
			t.Fatalf("%s: the refused restore changed the data dir:\nbefore:\n%s\nafter:\n%s", c.name, before, got)
		}
		if got := dirNames(t, parent); !slices.Equal(got, namesBefore) {
			t.Fatalf("%s: the refused restore left entries beside the data dir: %v", c.name, got)
		}
	}
	if st, aside := leftovers(t, parent, base); len(st)+len(aside) != 0 {
		t.Fatalf("leftovers: %v %v", st, aside)
	}
	// And the encrypted backup restores with its key.
	rep := restoreBackup(t, x, n.DataDir, "-i", keyFile)
	if rep.MovedAside == "" {
		t.Errorf("restore over an existing data dir kept no previous one: %+v", rep)
	}
	// The previous data dir is kept aside as it was, less its LOCK and its
	// backup dir, which moved into the restored one.
	var keptWant, backupsWant []string
	for _, line := range strings.Split(before, "\n") {
		switch {
		case strings.HasPrefix(line, "backup"):
			backupsWant = append(backupsWant, line)
		case !strings.HasPrefix(line, "LOCK "):
			keptWant = append(keptWant, line)
		}
	}
	if got := dirListing(t, rep.MovedAside); got != strings.Join(keptWant, "\n") {
		t.Errorf("the kept-aside data dir is not the previous one:\n%s\nwant:\n%s", got, strings.Join(keptWant, "\n"))
	}
	var backupsGot []string
	for _, line := range strings.Split(dirListing(t, n.DataDir), "\n") {
		if strings.HasPrefix(line, "backup") {
			backupsGot = append(backupsGot, line)
		}
	}
	if !slices.Equal(backupsGot, backupsWant) {
		t.Errorf("the node's backups did not move into the restored data dir:\n%s\nwant:\n%s", backupsGot, backupsWant)
	}
	n.Start()
	if got := tableCount(n, "users"); got != 1 {
		t.Fatalf("users after restoring the X25519 backup: %d", got)
	}
}

// TestRestoreKill9 kills `roost restore` (-9) at ever later moments of a
// restore large enough to take a while: after each kill the data dir is
// either exactly the old one or the complete restored one, never a mix;
// the staging dirs a kill leaves do not stop the next restore.
func TestRestoreKill9(t *testing.T) {
	t.Parallel()
	n := newClusterNode(t, "kill9")
	n.Start()
	dir := shortTempDir(t)
	n.mustCtl("data", "import", writeUsersExport(t, dir, "k", 50000))
	file := filepath.Join(dir, "full.tar.zst")
	res := createBackup(t, n, "--file", file)
	m := inspectBackup(t, file)
	n.mustCtl("users", "add", "after-backup", "pw") // the old data dir differs from the backup
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
	parent, base := filepath.Dir(n.DataDir), filepath.Base(n.DataDir)
	before := dirListing(t, n.DataDir)
	t.Logf("backup: %d bytes, %d users, store.db %s", res.Size, m.Tables["users"], m.fileSHA("data/store.db")[:12])

	isRestored := func() bool {
		return fileSHA256(t, filepath.Join(n.DataDir, "store.db")) == m.fileSHA("data/store.db") &&
			fileSHA256(t, filepath.Join(n.DataDir, "node.json")) == m.fileSHA("data/node.json")
	}
	var log []string
	completed, restored := false, false
	for _, delay := range []time.Duration{0, 2, 5, 10, 20, 30, 45, 60, 80, 100, 130, 160, 200, 250, 300, 400, 500, 650, 800, 1000, 1300, 1600, 2000, 3000, 5000, 8000, 12000} {
		delay *= time.Millisecond
		cmd := exec.Command(roostBin, "restore", file, "--data-dir", n.DataDir, "-o", "json")
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		start := time.Now()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(delay)
		cmd.Process.Kill()
		err := cmd.Wait()
		took := time.Since(start)
		completed = err == nil
		if err != nil && !strings.Contains(err.Error(), "killed") {
			t.Fatalf("restore failed by itself: %v\n%s", err, out.String())
		}
		st, aside := leftovers(t, parent, base)
		switch now := dirListing(t, n.DataDir); {
		case now == before:
			if completed {
				t.Fatalf("restore completed but the data dir is the old one:\n%s", out.String())
			}
			if len(aside) != 0 {
				t.Fatalf("killed after %s: the data dir is the old one, yet %v was kept aside", delay, aside)
			}
			log = append(log, fmt.Sprintf("%s: old (staging %d)", delay, len(st)))
			continue
		case isRestored():
			restored = true
			log = append(log, fmt.Sprintf("%s: restored (completed %v, in %s; staging %v, aside %v)", delay, completed, took.Round(time.Millisecond), st, aside))
		default:
			t.Fatalf("killed after %s: the data dir is neither the old nor the restored one:\n%s\nold:\n%s", delay, now, before)
		}
		break
	}
	t.Logf("kill -9 of restore: %s", strings.Join(log, "; "))
	if !restored {
		t.Fatal("no restore completed")
	}
	if !completed {
		// Killed after the swap: the data dir is the restored one. A
		// following restore must still work (in another second, see
		// TestRestoreTwiceInOneSecond).
		time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second + 50*time.Millisecond)))
		restoreBackup(t, file, n.DataDir)
	}
	if st, _ := leftovers(t, parent, base); len(st) != 0 {
		t.Errorf("staging dirs left after a completed restore: %v", st)
	}
	n.Start()
	_, counts := digestTables(n)
	if fmt.Sprint(counts) != fmt.Sprint(m.Tables) {
		t.Fatalf("restored node's tables %v, the backup's %v", counts, m.Tables)
	}
}

// TestForceNewCluster loses a whole 3-node cluster but one node's backup:
// restored with --force-new-cluster, that node is the leader of a new
// one-voter cluster (new cluster id) with the source's data; two empty
// nodes join it and hold the same data.
func TestForceNewCluster(t *testing.T) {
	t.Parallel()
	nodes := startCluster(t, 3)
	a := follower(t, nodes)
	for i := range 8 {
		mustWrite(t, nodes[i%3], "users", "add", fmt.Sprintf("u%d", i), "pw")
	}
	mustWrite(t, nodes[1], "acl", "add", "--username", "u1", "--topic", "t/#", "--action", "all", "--permission", "allow")
	mustWrite(t, nodes[2], "banned", "add", "--clientid", "evil-client", "--reason", "e2e")
	src := waitConverged(t, nodes)
	old, _ := readIdentity(t, a.DataDir)
	file := filepath.Join(shortTempDir(t), "a.tar.zst")
	createBackup(t, a, "--file", file)
	if d := tablesDigest(a); d != src {
		t.Fatalf("data changed during the backup")
	}
	for _, n := range nodes {
		if err := n.Stop(); err != nil {
			t.Fatal(err)
		}
		if err := os.RemoveAll(n.DataDir); err != nil {
			t.Fatal(err)
		}
	}
	rep := restoreBackup(t, file, a.DataDir, "--force-new-cluster")
	if !rep.ForceNewCluster || rep.ClusterID == old.ClusterID || rep.ClusterID == "" || len(rep.Members) != 1 ||
		!strings.HasPrefix(rep.Members[0], old.NodeID+"@") {
		t.Errorf("restore report: %+v (old cluster %s)", rep, old.ClusterID)
	}
	a.Start()
	var st ctlStatus
	mqttEventually(t, 15*time.Second, "A leader of its new cluster", func() bool {
		st = parseStatus(t, a.mustCtl("status", "-o", "json"))
		return st.Raft.State == "Leader"
	})
	if st.Raft.Voters != 1 || st.ClusterID != rep.ClusterID || st.NodeID != old.NodeID {
		t.Errorf("status: %+v, want node %s of cluster %s, 1 voter", st, old.NodeID, rep.ClusterID)
	}
	if id, _ := readIdentity(t, a.DataDir); id.ClusterID != rep.ClusterID {
		t.Errorf("node.json cluster id %s, want %s", id.ClusterID, rep.ClusterID)
	}
	if d := tablesDigest(a); d != src {
		t.Fatalf("new cluster's data:\n%s\nsource's:\n%s", d, src)
	}
	mustWrite(t, a, "users", "add", "in-new-cluster", "pw") // it takes writes alone
	fresh := []*node{a, newClusterNode(t, "f1"), newClusterNode(t, "f2")}
	for i, n := range fresh[1:] {
		n.Start()
		joinRetry(t, n, a, i+2)
	}
	waitClusterHealthy(t, fresh, 3)
	waitConverged(t, fresh)
	for _, n := range fresh {
		if got := tableCount(n, "users"); got != 9 {
			t.Errorf("%s: %d users, want 9", n.Cluster, got)
		}
		if st := parseStatus(t, n.mustCtl("status", "-o", "json")); st.ClusterID != rep.ClusterID {
			t.Errorf("%s: cluster id %s, want %s", n.Cluster, st.ClusterID, rep.ClusterID)
		}
	}
}

// TestScheduledBackupsRetention runs scheduled backups every second,
// keeping 2: the two newest scheduled ones remain and a manual one is
// never pruned; status shows the last success. The REST routes are for
// administrators only, download the file's bytes, delete, and refuse
// names outside the backup dir.
func TestScheduledBackupsRetention(t *testing.T) {
	t.Parallel()
	n := newClusterNode(t, "sched", "ROOST_BACKUP__INTERVAL=1s", "ROOST_BACKUP__KEEP=2")
	n.Start()
	n.mustCtl("users", "add", "u", "pw")
	manual := createBackup(t, n)
	if manual.Scheduled {
		t.Errorf("manual backup marked scheduled: %+v", manual)
	}
	backupDir := filepath.Join(n.DataDir, "backup")

	var written []string // scheduled backups, in order, from the node's log
	autoWritten := func() []string {
		var names []string
		for _, line := range strings.Split(n.Logs(), "\n") {
			if !strings.Contains(line, "node backup written") {
				continue
			}
			for _, f := range strings.Fields(line) {
				if v, ok := strings.CutPrefix(f, "file="); ok && strings.HasSuffix(v, "-auto.tar.zst") {
					names = append(names, filepath.Base(v))
				}
			}
		}
		return names
	}
	mqttEventually(t, 20*time.Second, "4 scheduled backups", func() bool {
		written = autoWritten()
		return len(written) >= 4
	})
	var l backupList
	mqttEventually(t, 5*time.Second, "exactly the 2 newest scheduled backups kept", func() bool {
		written = autoWritten()
		mqttCtlJSON(n, &l, "backup", "list")
		var auto []string
		hasManual := false
		for _, b := range l.Backups {
			if b.Scheduled {
				auto = append(auto, b.Name)
			}
			hasManual = hasManual || b.Name == manual.Name
		}
		if !hasManual {
			t.Fatalf("the manual backup %s was pruned: %+v", manual.Name, l.Backups)
		}
		return len(auto) == 2 && slices.Equal(auto, written[len(written)-2:]) && l.Schedule.LastFile == auto[1]
	})
	for _, name := range written[:len(written)-2] {
		if _, err := os.Stat(filepath.Join(backupDir, name)); !os.IsNotExist(err) {
			t.Errorf("pruned backup %s still on disk: %v", name, err)
		}
	}
	if !l.Schedule.Enabled || l.Schedule.Interval != "1s" || l.Schedule.Keep != 2 || l.Schedule.LastSuccess.IsZero() || l.Schedule.LastError != "" {
		t.Errorf("schedule: %+v", l.Schedule)
	}
	var st struct {
		Backups *struct {
			Enabled     bool      `json:"enabled"`
			LastSuccess time.Time `json:"last_success"`
			LastFile    string    `json:"last_file"`
		} `json:"backups"`
	}
	mqttCtlJSON(n, &st, "status")
	if st.Backups == nil || !st.Backups.Enabled || st.Backups.LastSuccess.IsZero() || !strings.HasSuffix(st.Backups.LastFile, "-auto.tar.zst") {
		t.Errorf("ctl status backups: %+v", st.Backups)
	}

	// -o FILE downloads (the summary is then a table); --name names it.
	dlFile := filepath.Join(shortTempDir(t), "named.tar.zst")
	out := n.mustCtl("backup", "create", "--name", "named.tar.zst", "-o", dlFile)
	if !strings.Contains(out, "downloaded to:") || fileSHA256(t, dlFile) != fileSHA256(t, filepath.Join(backupDir, "named.tar.zst")) {
		t.Errorf("backup create -o FILE:\n%s", out)
	}
	for _, bad := range []string{"named.json", "../named2.tar.zst", "named.tar.zst.age"} {
		if errOut := ctlFails(t, n, "backup", "create", "--name", bad); errOut == "" {
			t.Errorf("--name %s: no message", bad)
		}
	}
	if errOut := ctlFails(t, n, "backup", "create", "--name", "named.tar.zst"); !strings.Contains(errOut, "already") {
		t.Errorf("--name of an existing backup: %s", errOut)
	}

	// REST: a viewer admin may not; the administrator may.
	hash, err := bcrypt.GenerateFromPassword([]byte("viewer-pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	adm := filepath.Join(shortTempDir(t), "admins.json")
	e := newExportWriter(t, adm, 1)
	e.table("admins")
	e.record(fmt.Sprintf(`{"v":1,"username":"viewer1","password_hash":%q,"role":"viewer","created_at":"2025-01-01T00:00:00Z"}`, hash))
	e.close(t, nil, "")
	n.mustCtl("data", "import", adm)
	login := func(user, pw string) string {
		r := doAPI(t, n.API, apiCall{Method: "POST", Path: "/api/v1/login", Body: fmt.Sprintf(`{"username":%q,"password":%q}`, user, pw)})
		var lr struct{ Token, Role string }
		if r.Status != 200 || json.Unmarshal(r.Body, &lr) != nil || lr.Token == "" {
			t.Fatalf("login %s: %s", user, r)
		}
		return lr.Token
	}
	viewer := login("viewer1", "viewer-pw")
	pw, err := os.ReadFile(filepath.Join(n.DataDir, "initial-admin-password"))
	if err != nil {
		t.Fatal(err)
	}
	admin := login("admin", strings.TrimSpace(string(pw)))
	var key struct{ Name, Secret string }
	json.Unmarshal([]byte(n.mustCtl("apikeys", "create", "bk-key", "--output", "json")), &key)

	dl := "/api/v1/backups/" + manual.Name
	for _, c := range []apiCall{
		{Method: "GET", Path: "/api/v1/backups"},
		{Method: "GET", Path: dl},
		{Method: "POST", Path: "/api/v1/backups", Body: `{}`},
		{Method: "DELETE", Path: dl},
	} {
		c.Bearer = viewer
		wantAPIError(t, "viewer "+c.Method+" "+c.Path, doAPI(t, n.API, c), 403, "FORBIDDEN")
		c.Bearer = ""
		wantAPIError(t, "anonymous "+c.Method+" "+c.Path, doAPI(t, n.API, c), 401, "UNAUTHORIZED")
	}
	for what, c := range map[string]apiCall{
		"admin token": {Method: "GET", Path: "/api/v1/backups", Bearer: admin},
		"API key":     {Method: "GET", Path: "/api/v1/backups", BasicUser: key.Name, BasicPass: key.Secret},
	} {
		r := doAPI(t, n.API, c)
		var got backupList
		if r.Status != 200 || json.Unmarshal(r.Body, &got) != nil || len(got.Backups) < 3 || !got.Schedule.Enabled {
			t.Errorf("%s: GET /api/v1/backups: %s", what, r)
		}
	}
	r := doAPI(t, n.API, apiCall{Method: "GET", Path: dl, Bearer: admin})
	onDisk, err := os.ReadFile(filepath.Join(backupDir, manual.Name))
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != 200 || string(r.Body) != string(onDisk) {
		t.Errorf("download: HTTP %d, %d bytes, want the %d bytes of the file", r.Status, len(r.Body), len(onDisk))
	}
	// Through ctl (the unix socket) too.
	got := filepath.Join(shortTempDir(t), "dl.tar.zst")
	n.mustCtl("backup", "download", manual.Name, got)
	if fileSHA256(t, got) != fileSHA256(t, filepath.Join(backupDir, manual.Name)) {
		t.Errorf("ctl backup download: different bytes")
	}

	// Names outside the backup dir, or not backups, are refused.
	for _, c := range []apiCall{
		{Method: "GET", Path: "/api/v1/backups/..%2Fnode.json"},
		{Method: "GET", Path: "/api/v1/backups/..%2F..%2Fetc%2Fpasswd"},
		{Method: "DELETE", Path: "/api/v1/backups/..%2Fnode.json"},
		{Method: "DELETE", Path: "/api/v1/backups/..%2Fbackup%2F" + manual.Name},
		{Method: "POST", Path: "/api/v1/backups", Body: `{"name":"../escape.tar.zst"}`},
		{Method: "POST", Path: "/api/v1/backups", Body: `{"name":"/tmp/escape.tar.zst"}`},
		{Method: "GET", Path: "/api/v1/backups/node.json"},
	} {
		c.Bearer = admin
		r := doAPI(t, n.API, c)
		if r.Status != 400 {
			t.Errorf("%s %s %s: %s, want 400", c.Method, c.Path, c.Body, r)
		}
	}
	if _, err := os.Stat(filepath.Join(n.DataDir, "node.json")); err != nil {
		t.Fatalf("node.json: %v", err)
	}
	for _, p := range []string{filepath.Join(n.DataDir, "escape.tar.zst"), "/tmp/escape.tar.zst"} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s was written", p)
		}
	}
	if errOut := ctlFails(t, n, "backup", "delete", "../node.json"); errOut == "" {
		t.Errorf("ctl backup delete ../node.json: no error message")
	}
	n.mustCtl("backup", "delete", "named.tar.zst")
	if _, err := os.Stat(filepath.Join(backupDir, "named.tar.zst")); !os.IsNotExist(err) {
		t.Errorf("ctl backup delete: still on disk: %v", err)
	}

	// DELETE removes.
	if r := doAPI(t, n.API, apiCall{Method: "DELETE", Path: dl, Bearer: admin}); r.Status != 204 {
		t.Fatalf("DELETE %s: %s", dl, r)
	}
	if _, err := os.Stat(filepath.Join(backupDir, manual.Name)); !os.IsNotExist(err) {
		t.Errorf("deleted backup still on disk: %v", err)
	}
	wantAPIError(t, "DELETE again", doAPI(t, n.API, apiCall{Method: "DELETE", Path: dl, Bearer: admin}), 404, "NOT_FOUND")
	mqttCtlJSON(n, &l, "backup", "list")
	for _, b := range l.Backups {
		if b.Name == manual.Name {
			t.Errorf("deleted backup still listed")
		}
	}
}

// TestBackupCreateReportsFileCount: the summary of `roost ctl backup
// create` says how many files the backup holds.
func TestBackupCreateReportsFileCount(t *testing.T) {
	t.Parallel()
	n := newClusterNode(t, "count")
	n.Start()
	res := createBackup(t, n)
	m := inspectBackup(t, res.Path)
	if res.Files != len(m.Files) || res.Files == 0 {
		t.Errorf(`backup create -o json says "files": %d, the manifest lists %d files`, res.Files, len(m.Files))
	}
}

// TestBackupCreateTwiceInOneSecond makes two backups in a row with the
// default name, as a script would: both must be made (the default name
// has a one-second resolution).
func TestBackupCreateTwiceInOneSecond(t *testing.T) {
	t.Parallel()
	n := newClusterNode(t, "twice-create")
	n.Start()
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second + 10*time.Millisecond)))
	first := createBackup(t, n)
	out, errOut, err := n.ctl("backup", "create", "-o", "json")
	if err != nil {
		t.Errorf("second backup right after %s: %v\n%s%s", first.Name, err, out, errOut)
	}
}

// TestRestoreTwiceInOneSecond restores a node twice in a row (an
// operator retrying, or restoring the wrong backup then the right one):
// the second restore must succeed too, or fail leaving the data dir as
// it says, and the node's backup dir must survive either way.
func TestRestoreTwiceInOneSecond(t *testing.T) {
	t.Parallel()
	n := newClusterNode(t, "twice")
	n.Start()
	n.mustCtl("users", "add", "u", "pw")
	res := createBackup(t, n)
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
	file := res.Path // in the node's own backup dir, as an operator would
	backupSHA := fileSHA256(t, file)
	// Both restores in the same second (each takes a few ms).
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second + 10*time.Millisecond)))
	first := restoreBackup(t, file, n.DataDir)
	afterFirst := dirListing(t, n.DataDir)
	out, errOut, err := roost(t, "restore", file, "--data-dir", n.DataDir, "-o", "json")
	if err != nil {
		t.Errorf("second restore (first kept %s aside): %v\n%s%s", first.MovedAside, err, out, errOut)
		if strings.Contains(errOut, "unchanged") && dirListing(t, n.DataDir) != afterFirst {
			t.Errorf("the failed restore says the data dir is unchanged, but it was changed")
		}
	}
	if _, err := os.Stat(file); err != nil {
		t.Fatalf("the node's backup %s is gone after two restores: %v", res.Name, err)
	}
	if got := fileSHA256(t, file); got != backupSHA {
		t.Fatalf("the node's backup changed")
	}
	n.Start()
	if got := tableCount(n, "users"); got != 1 {
		t.Fatalf("users: %d", got)
	}
}

// joinRetry joins n to the cluster of to, retrying while that cluster
// is between leaders (as startCluster does), and waits until to sees
// size members.
func joinRetry(t *testing.T, n, to *node, size int) {
	t.Helper()
	var err error
	var errOut string
	for attempt := 0; attempt < 20; attempt++ {
		if _, errOut, err = n.ctl("cluster", "join", to.Cluster); err == nil || !strings.Contains(errOut, "no leader") {
			break
		}
		t.Logf("join %s: attempt %d: %s", n.Cluster, attempt+1, strings.TrimSpace(errOut))
		time.Sleep(500 * time.Millisecond)
	}
	if err != nil {
		time.Sleep(3 * time.Second)
		t.Logf("status after failed join: %+v", clusterStatus(to))
		t.Fatalf("cluster join: %v\n%s\nlog of %s:\n%s\nlog of joiner:\n%s", err, errOut, to.Cluster, to.Logs(), n.Logs())
	}
	mqttEventually(t, 20*time.Second, fmt.Sprintf("%d members", size), func() bool { return len(clusterStatus(to)) == size })
}

// TestRestoreCatchUpFromSnapshot restores a follower from a backup whose
// raft index the cluster has since compacted away: the restored node
// cannot replay the log and must install the leader's snapshot over the
// one restore made.
func TestRestoreCatchUpFromSnapshot(t *testing.T) {
	t.Parallel()
	nodes := startCluster(t, 3, "ROOST_CLUSTER__SNAPSHOT_THRESHOLD=16", "ROOST_CLUSTER__SNAPSHOT_INTERVAL=200ms", "ROOST_CLUSTER__TRAILING_LOGS=4")
	a := follower(t, nodes)
	var others []*node
	for _, n := range nodes {
		if n != a {
			others = append(others, n)
		}
	}
	for i := range 5 {
		mustWrite(t, others[i%2], "users", "add", fmt.Sprintf("before-%d", i), "pw")
	}
	waitConverged(t, nodes)
	file := filepath.Join(shortTempDir(t), "a.tar.zst")
	createBackup(t, a, "--file", file)
	if err := a.Stop(); err != nil {
		t.Fatal(err)
	}
	for i := range 60 {
		mustWrite(t, others[i%2], "users", "add", fmt.Sprintf("after-%d", i), "pw")
	}
	mustWrite(t, others[0], "users", "del", "before-0")
	waitConverged(t, others)
	if err := os.RemoveAll(a.DataDir); err != nil {
		t.Fatal(err)
	}
	restoreBackup(t, file, a.DataDir)
	a.Start()
	waitConverged(t, nodes)
	waitClusterHealthy(t, nodes, 3)
	if got := tableCount(a, "users"); got != 64 {
		t.Errorf("restored node has %d users, want 64", got)
	}
	if !strings.Contains(a.Logs(), "Installed remote snapshot") {
		t.Errorf("the restored node did not catch up from a snapshot:\n%s", a.Logs())
	}
	// And it serves writes through the cluster like any member.
	mustWrite(t, a, "users", "add", "via-restored", "pw")
	waitConverged(t, nodes)
}

// TestRestoreSymlinkedDataDir restores a node whose data dir is a
// symlink to a volume (/var/lib/roost -> /mnt/data/roost, say): the
// restored data must land on the volume, behind the same symlink, not in
// a new directory beside the symlink.
func TestRestoreSymlinkedDataDir(t *testing.T) {
	t.Parallel()
	n := newClusterNode(t, "linked")
	root := filepath.Dir(n.DataDir)
	volume := filepath.Join(root, "vol", "data")
	if err := os.MkdirAll(filepath.Dir(volume), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(volume, n.DataDir); err != nil { // the data dir is created through the link
		t.Fatal(err)
	}
	if err := os.MkdirAll(volume, 0o700); err != nil {
		t.Fatal(err)
	}
	n.Start()
	n.mustCtl("users", "add", "u", "pw")
	res := createBackup(t, n)
	n.mustCtl("users", "add", "after", "pw")
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
	restoreBackup(t, res.Path, n.DataDir)
	fi, err := os.Lstat(n.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the data dir symlink %s was replaced by a directory: the restored data is no longer on the volume %s (left: %v)",
			n.DataDir, volume, dirNames(t, root))
	} else if target, _ := os.Readlink(n.DataDir); target != volume {
		t.Errorf("the data dir symlink points to %s, want %s", target, volume)
	}
	m := inspectBackup(t, res.Path)
	if got := fileSHA256(t, filepath.Join(volume, "store.db")); got != m.fileSHA("data/store.db") {
		t.Errorf("the volume %s does not hold the restored store", volume)
	}
	n.Start()
	if got := tableCount(n, "users"); got != 1 {
		t.Errorf("users after restore: %d, want 1", got)
	}
}

// TestForceNewClusterOldPeersAlive restores a node with
// --force-new-cluster while the rest of its old cluster still runs (the
// operator was wrong that every other node was lost). The node is a new
// cluster (new cluster id): it must stay the leader of its own one-voter
// cluster with its own data, and the old cluster must not count it as a
// healthy member of theirs.
func TestForceNewClusterOldPeersAlive(t *testing.T) {
	t.Parallel()
	nodes := startCluster(t, 3)
	a := follower(t, nodes)
	var others []*node
	for _, n := range nodes {
		if n != a {
			others = append(others, n)
		}
	}
	mustWrite(t, others[0], "users", "add", "u0", "pw")
	waitConverged(t, nodes)
	file := filepath.Join(shortTempDir(t), "a.tar.zst")
	createBackup(t, a, "--file", file)
	if err := a.Stop(); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		mustWrite(t, others[0], "users", "add", fmt.Sprintf("old-%d", i), "pw")
	}
	rep := restoreBackup(t, file, a.DataDir, "--force-new-cluster")
	a.Start()
	mustWrite(t, a, "users", "add", "new-only", "pw")
	time.Sleep(3 * time.Second) // heartbeats of the old leader have reached A many times
	st := parseStatus(t, a.mustCtl("status", "-o", "json"))
	if st.Raft.State != "Leader" || st.Raft.Voters != 1 || st.ClusterID != rep.ClusterID {
		t.Errorf("the new cluster's node: raft %s with %d voters, cluster %s (want Leader, 1 voter, %s): it was taken over by its old cluster",
			st.Raft.State, st.Raft.Voters, st.ClusterID, rep.ClusterID)
	}
	if got := tableCount(a, "users"); got != 2 {
		t.Errorf("the new cluster's node has %d users, want 2 (u0, new-only)", got)
	}
	for _, m := range clusterStatus(others[0]) {
		if m.NodeID != rep.NodeID {
			continue
		}
		if m.Healthy {
			t.Errorf("the old cluster counts the node of the new cluster as a healthy member: %+v", m)
		}
	}
	// Once it reaches the node (the first call may find the connection
	// pooled before the restart gone), the old cluster's status says why.
	var last clusterMember
	mqttEventually(t, 10*time.Second, "the old cluster's status to name the node's new cluster", func() bool {
		for _, m := range clusterStatus(others[0]) {
			if m.NodeID == rep.NodeID {
				last = m
				if m.Healthy {
					t.Fatalf("the old cluster counts the node of the new cluster as a healthy member: %+v", m)
				}
				return strings.Contains(m.Error, rep.ClusterID)
			}
		}
		return false
	})
	t.Logf("the old cluster's status of the node: %s", last.Error)
	// The refusal is logged on the restored node, naming both cluster ids
	// and the likely cause.
	logs := a.Logs()
	if !strings.Contains(logs, "peer is in another cluster") || !strings.Contains(logs, "--force-new-cluster") {
		t.Errorf("the restored node did not log the refused traffic of its old cluster:\n%s", logs)
	}
}

// TestRestoreBringsBackSessions: a persistent session (its subscription
// and the QoS 1 messages queued for it) is part of a node backup. After
// the backup the client drains and ends its session; restored, the node
// has the session of the backup again.
func TestRestoreBringsBackSessions(t *testing.T) {
	t.Parallel()
	n := newClusterNode(t, "sess", "ROOST_AUTHN__ENABLE=false")
	n.Start()
	id := mqttClientID("persist")
	o := v5Options{ClientID: id, CleanStart: true, SessionExpiry: 3600}
	c, _, err := dialV5(t, n.MQTT, o)
	if err != nil {
		t.Fatal(err)
	}
	c.MustSubscribe(1, "q/#")
	c.Disconnect()
	pub := mustV5(t, n.MQTT, mqttClientID("pub"), "", "")
	for i := range 3 {
		pub.MustPublish(fmt.Sprintf("q/%d", i), 1, false, []byte(fmt.Sprint(i)))
	}
	res := createBackup(t, n)

	// After the backup: the client takes its messages and ends its session.
	o.CleanStart = false
	c, ca, err := dialV5(t, n.MQTT, o)
	if err != nil || !ca.SessionPresent {
		t.Fatalf("reconnect: %v, session present %v", err, ca != nil && ca.SessionPresent)
	}
	c.Expect(3)
	c.Disconnect()
	o.CleanStart, o.SessionExpiry = true, 0
	c, _, err = dialV5(t, n.MQTT, o)
	if err != nil {
		t.Fatal(err)
	}
	c.Disconnect()
	pub.Disconnect()
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
	restoreBackup(t, res.Path, n.DataDir)
	n.Start()
	o.CleanStart, o.SessionExpiry = false, 3600
	c, ca, err = dialV5(t, n.MQTT, o)
	if err != nil {
		t.Fatal(err)
	}
	if !ca.SessionPresent {
		t.Fatal("the restored node has no session for the client: sessions.db of the backup not restored")
	}
	got := c.Expect(3)
	for i, m := range got {
		if m.Topic != fmt.Sprintf("q/%d", i) {
			t.Errorf("queued message %d: %s", i, m.Topic)
		}
	}
	pub = mustV5(t, n.MQTT, mqttClientID("pub2"), "", "")
	pub.MustPublish("q/live", 1, false, []byte("live"))
	if m := c.Expect(1)[0]; m.Topic != "q/live" {
		t.Errorf("the restored subscription: got %s", m.Topic)
	}
}

// TestBackupCreateBadRecipient: a recipient that is not an age public
// key is the caller's mistake: 400 naming it, not a 500 internal error.
func TestBackupCreateBadRecipient(t *testing.T) {
	t.Parallel()
	n := newClusterNode(t, "recip")
	n.Start()
	var key struct{ Name, Secret string }
	json.Unmarshal([]byte(n.mustCtl("apikeys", "create", "k", "--output", "json")), &key)
	r := doAPI(t, n.API, apiCall{Method: "POST", Path: "/api/v1/backups", Body: `{"recipients":["not-an-age-key"]}`,
		BasicUser: key.Name, BasicPass: key.Secret})
	wantAPIError(t, "POST /api/v1/backups with a bad recipient", r, 400, "BAD_REQUEST", "not-an-age-key")
	if errOut := ctlFails(t, n, "backup", "create", "--encrypt-to", "not-an-age-key"); strings.Contains(errOut, "internal error") {
		t.Errorf("ctl backup create --encrypt-to not-an-age-key: %s", errOut)
	}
	if ents, err := os.ReadDir(filepath.Join(n.DataDir, "backup")); len(ents) != 0 {
		t.Errorf("backup dir after refused creates: %v %v", ents, err)
	}
}

// TestBackupNodeKilledMidBackup kills the node (-9) while it writes a
// backup: no partial backup is ever listed, and the partial temp file is
// cleaned up (at the latest by the next backup) instead of filling the
// disk crash after crash.
func TestBackupNodeKilledMidBackup(t *testing.T) {
	t.Parallel()
	n := newClusterNode(t, "midkill")
	n.Start()
	n.mustCtl("data", "import", writeUsersExport(t, shortTempDir(t), "m", 50000))
	backupDir := filepath.Join(n.DataDir, "backup")
	temps := func() []string {
		var out []string
		for _, name := range dirNames(t, backupDir) {
			if strings.HasPrefix(name, ".partial-") { // the dir target's temp names
				out = append(out, name)
			}
		}
		return out
	}
	cmd := exec.Command(roostBin, "ctl", "backup", "create")
	cmd.Env = n.env()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for len(temps()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no backup temp file seen")
		}
		time.Sleep(time.Millisecond)
	}
	n.Kill()
	cmd.Wait()
	left := temps()
	n.Start()
	var l backupList
	mqttCtlJSON(n, &l, "backup", "list")
	for _, b := range l.Backups {
		if strings.HasPrefix(b.Name, "roost-backup-") {
			if out, errOut, err := roost(t, "backup", "verify", filepath.Join(backupDir, b.Name)); err != nil {
				t.Errorf("a partial backup is listed: %s: %v\n%s%s", b.Name, err, out, errOut)
			}
		}
	}
	createBackup(t, n)
	if now := temps(); len(now) != 0 {
		t.Errorf("the temp file(s) of the backup killed mid-way are still in the backup dir after a restart and a new backup: %v (left by the kill: %v)", now, left)
	}
}
