package backup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/roostmq/roost/internal/backup/target"
)

// TestHealth: one status per (kind, target), with the last success's
// name, size and duration, counts, and the failure's reason; Record
// leaves out what says nothing of the target; the JSON of the status
// and backup listings.
func TestHealth(t *testing.T) {
	h := NewHealth()
	h.Declare(KindNodeBackup, "s3://b/p", time.Hour)
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	h.Success(KindNodeBackup, "s3://b/p", at, 1500*time.Millisecond, "x.tar.zst", 10)
	h.Failure(KindNodeBackup, "s3://b/p", at.Add(time.Minute), errors.New("s3://b/p: put y: AccessDenied"))
	h.Success(KindDataExport, TargetLocal, at, time.Second, "e.json.gz", 5)
	ctx := context.Background()
	for _, err := range []error{fmt.Errorf("%w: bad name", ErrBadRequest), fmt.Errorf("%w: taken", ErrFileExists),
		fmt.Errorf("%w: another backup", ErrImportInProgress), fmt.Errorf("put: %w", context.Canceled)} {
		h.Record(ctx, KindNodeBackup, "s3://b/p", time.Now(), "", 0, err)
	}
	gone, cancel := context.WithCancel(ctx)
	cancel()
	h.Record(gone, KindNodeBackup, "s3://b/p", time.Now(), "", 0, errors.New("upload cut off"))

	s := h.StatusByTarget()
	if len(s) != 2 || s[0].Kind != KindDataExport || s[1].Successes != 1 || s[1].Failures != 1 ||
		s[1].LastName != "x.tar.zst" || s[1].Duration != 1500*time.Millisecond || s[1].Interval != time.Hour ||
		!strings.Contains(s[1].LastError, "AccessDenied") {
		t.Fatalf("status = %+v", s)
	}
	if got := h.Of(KindNodeBackup); len(got) != 1 || got[0].Target != "s3://b/p" {
		t.Fatalf("Of = %+v", got)
	}
	js, err := json.Marshal(s[1])
	if err != nil {
		t.Fatal(err)
	}
	want := `{"kind":"node_backup","target":"s3://b/p","interval":"1h0m0s","last_success":"2026-01-02T03:04:05Z",` +
		`"last_name":"x.tar.zst","last_size":10,"last_duration_ms":1500,"last_failure":"2026-01-02T03:05:05Z",` +
		`"last_error":"s3://b/p: put y: AccessDenied","successes":1,"failures":1}`
	if string(js) != want {
		t.Fatalf("JSON\n%s\nwant\n%s", js, want)
	}
	var back TargetStatus
	if err := json.Unmarshal(js, &back); err != nil || back != s[1] {
		t.Fatalf("JSON round trip: %+v %v, want %+v", back, err, s[1])
	}

	// A success found at the target at start: kept only if newer, and
	// counted as none.
	h.Seed(KindNodeBackup, "s3://b/p", at.Add(-time.Hour), "old.tar.zst", 1)
	h.Seed(KindDataExport, TargetLocal, at.Add(time.Hour), "newer.json.gz", 7)
	s = h.StatusByTarget()
	if s[1].LastName != "x.tar.zst" || s[0].LastName != "newer.json.gz" || s[0].Size != 7 || s[0].Duration != 0 || s[0].Successes != 1 {
		t.Fatalf("after Seed: %+v", s)
	}
}

func TestTargetLabel(t *testing.T) {
	for _, c := range []struct {
		tg   target.Target
		want string
	}{
		{target.NewDir("/var/lib/roost/backup"), TargetLocal},
		{target.NewDir("/var/lib/roost/backup/"), TargetLocal},
		{target.NewDir("/mnt/nfs/roost"), "/mnt/nfs/roost"},
	} {
		if got := TargetLabel(c.tg, "/var/lib/roost/backup"); got != c.want {
			t.Errorf("TargetLabel(%s) = %q, want %q", c.tg, got, c.want)
		}
	}
	s3, err := target.New("s3://bucket/roost/eu", target.S3Config{Endpoint: "http://127.0.0.1:9", AccessKeyID: "AKID",
		SecretAccessKey: "secret-key", Region: "us-east-1", PathStyle: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := TargetLabel(s3, "/var/lib/roost/backup"); got != "s3://bucket/roost/eu" {
		t.Errorf("TargetLabel(s3) = %q: want the URL, without credentials", got)
	}
}
