package target_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/roostmq/roost/internal/backup/target"
	"github.com/roostmq/roost/internal/backup/target/s3server"
)

func s3Config(srv *s3server.Server) target.S3Config {
	return target.S3Config{Endpoint: srv.Endpoint, Region: "us-east-1", AccessKeyID: s3server.AccessKey,
		SecretAccessKey: s3server.SecretKey, PathStyle: true, Getenv: func(string) string { return "" }}
}

func newS3(t *testing.T, srv *s3server.Server, spec string) target.Target {
	t.Helper()
	tg, err := target.New(spec, s3Config(srv))
	if err != nil {
		t.Fatal(err)
	}
	return tg
}

func put(t *testing.T, tg target.Target, name string, data []byte) target.Object {
	t.Helper()
	o, err := tg.Put(context.Background(), name, func(w io.Writer) error { _, err := w.Write(data); return err })
	if err != nil {
		t.Fatalf("put %s: %v", name, err)
	}
	return o
}

func names(t *testing.T, tg target.Target) []string {
	t.Helper()
	objs, err := tg.List(context.Background())
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	out := []string{}
	for _, o := range objs {
		out = append(out, o.Name)
	}
	return out
}

// exercise runs the behaviour every target shares.
func exercise(t *testing.T, tg target.Target) {
	ctx := context.Background()
	big := make([]byte, target.PartSize+12345) // two parts on S3
	rand.Read(big)
	if o := put(t, tg, "b.bin", big); o.Size != int64(len(big)) {
		t.Fatalf("put size %d, want %d", o.Size, len(big))
	}
	put(t, tg, "a.txt", []byte("hello"))
	if got := strings.Join(names(t, tg), ","); got != "a.txt,b.bin" {
		t.Fatalf("list = %s", got)
	}
	rc, o, err := tg.Open(ctx, "b.bin")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, big) || o.Size != int64(len(big)) {
		t.Fatalf("read back: %d bytes, err %v, size %d", len(got), err, o.Size)
	}
	if _, err := tg.Put(ctx, "a.txt", func(w io.Writer) error { return nil }); !errors.Is(err, target.ErrExists) {
		t.Fatalf("put over an existing name: %v, want ErrExists", err)
	}

	// A writer that fails part-way (after a whole part on S3) leaves
	// nothing under the name.
	boom := errors.New("boom")
	_, err = tg.Put(ctx, "c.bin", func(w io.Writer) error {
		if _, err := w.Write(big); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("failed writer: %v", err)
	}
	if _, err := tg.Stat(ctx, "c.bin"); !errors.Is(err, target.ErrNotFound) {
		t.Fatalf("stat after a failed put: %v, want ErrNotFound", err)
	}
	if got := strings.Join(names(t, tg), ","); got != "a.txt,b.bin" {
		t.Fatalf("list after a failed put = %s", got)
	}
	if err := tg.Delete(ctx, "a.txt"); err != nil {
		t.Fatal(err)
	}
	if err := tg.Delete(ctx, "a.txt"); !errors.Is(err, target.ErrNotFound) {
		t.Fatalf("delete twice: %v", err)
	}
	if _, _, err := tg.Open(ctx, "a.txt"); !errors.Is(err, target.ErrNotFound) {
		t.Fatalf("open deleted: %v", err)
	}
	for _, bad := range []string{"", "../x", "a/b", ".hidden"} {
		if _, err := tg.Put(ctx, bad, func(io.Writer) error { return nil }); err == nil {
			t.Errorf("put %q: no error", bad)
		}
	}
}

func TestDirTarget(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nfs", "roost")
	tg, err := target.New(dir, target.S3Config{})
	if err != nil {
		t.Fatal(err)
	}
	exercise(t, tg)
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("left behind: %s", e.Name())
		}
	}
	fi, _ := os.Stat(dir)
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("dir mode %v, want 0700", fi.Mode().Perm())
	}
	// A temp file of an interrupted put is not listed, and
	// RemoveStaleTemps removes it.
	os.WriteFile(filepath.Join(dir, target.TempPrefix+"x-1"), []byte("partial"), 0o600)
	if got := strings.Join(names(t, tg), ","); got != "b.bin" {
		t.Fatalf("list = %s", got)
	}
	if got := target.RemoveStaleTemps(dir); len(got) != 1 {
		t.Fatalf("RemoveStaleTemps removed %v", got)
	}
	// AbortIncomplete removes only the temp files of names it owns,
	// older than the cutoff.
	for _, n := range []string{"own-auto.bin", "other.bin"} {
		os.WriteFile(filepath.Join(dir, target.TempPrefix+n+"-12345"), []byte("partial"), 0o600)
	}
	own := func(n string) bool { return strings.HasSuffix(n, "-auto.bin") }
	if got, err := tg.(*target.Dir).AbortIncomplete(context.Background(), own, time.Now().Add(-time.Hour)); err != nil || len(got) != 0 {
		t.Fatalf("AbortIncomplete with an old cutoff: %v %v", got, err)
	}
	if got, err := tg.(*target.Dir).AbortIncomplete(context.Background(), own, time.Now().Add(time.Second)); err != nil || len(got) != 1 || got[0] != "own-auto.bin" {
		t.Fatalf("AbortIncomplete: %v %v", got, err)
	}
	if _, err := os.Stat(filepath.Join(dir, target.TempPrefix+"other.bin-12345")); err != nil {
		t.Fatal("AbortIncomplete removed a temp file it does not own")
	}
	if _, err := target.New("relative/dir", target.S3Config{}); err == nil {
		t.Error("a relative dir target was accepted")
	}
}

func TestS3Target(t *testing.T) {
	srv := s3server.Start(t)
	srv.MakeBucket(t, "roost")
	tg := newS3(t, srv, "s3://roost/cluster-a/backups")
	if tg.String() != "s3://roost/cluster-a/backups" {
		t.Fatalf("String() = %s", tg.String())
	}
	exercise(t, tg)
	// Objects sit under the prefix; a failed put left no object and,
	// once aborted, no upload.
	if got := strings.Join(srv.Keys(t, "roost"), ","); got != "cluster-a/backups/b.bin" {
		t.Fatalf("bucket keys = %s", got)
	}
	// Objects of a deeper prefix are not this target's.
	put(t, newS3(t, srv, "s3://roost/cluster-a/backups/old"), "x", []byte("x"))
	if got := strings.Join(names(t, tg), ","); got != "b.bin" {
		t.Fatalf("list = %s", got)
	}
}

func TestS3WrongCredentials(t *testing.T) {
	srv := s3server.Start(t)
	srv.MakeBucket(t, "roost")
	cfg := s3Config(srv)
	cfg.SecretAccessKey = "not-the-secret"
	tg, err := target.New("s3://roost/p", cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, err = tg.Put(context.Background(), "x.bin", func(w io.Writer) error { _, err := w.Write([]byte("data")); return err })
	var te *target.Error
	if !errors.As(err, &te) || te.Code != "SignatureDoesNotMatch" {
		t.Fatalf("put with a wrong secret: %v (want a target error with code SignatureDoesNotMatch)", err)
	}
	msg := err.Error()
	for _, want := range []string{"s3://roost/p", srv.Endpoint, "put x.bin", "SignatureDoesNotMatch"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not name %q", msg, want)
		}
	}
	if strings.Contains(msg, "not-the-secret") || strings.Contains(msg, s3server.SecretKey) {
		t.Errorf("error %q shows a secret", msg)
	}
	cfg.AccessKeyID, cfg.SecretAccessKey = "nobody", "whatever"
	tg, _ = target.New("s3://roost/p", cfg)
	// AWS says InvalidAccessKeyId; versitygw XAdminUserNotFound.
	if _, err := tg.List(context.Background()); !errors.As(err, &te) || te.Code == "" || !strings.Contains(err.Error(), te.Code) {
		t.Fatalf("list with an unknown key id: %v", err)
	}
}

func TestS3Credentials(t *testing.T) {
	env := map[string]string{"AWS_ACCESS_KEY_ID": "id-from-env", "AWS_SECRET_ACCESS_KEY": "secret-from-env"}
	if _, err := target.New("s3://b/p", target.S3Config{Getenv: func(k string) string { return env[k] }}); err != nil {
		t.Fatalf("credentials from the environment: %v", err)
	}
	_, err := target.New("s3://b/p", target.S3Config{Getenv: func(string) string { return "" }})
	if err == nil || !strings.Contains(err.Error(), "no S3 credentials") {
		t.Fatalf("no credentials: %v", err)
	}
	f := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(f, []byte("\n"), 0o600)
	_, err = target.New("s3://b/p", target.S3Config{AccessKeyID: "id", SecretAccessKeyFile: f})
	if err == nil || !strings.Contains(err.Error(), "first line is empty") {
		t.Fatalf("empty secret file: %v", err)
	}
	for _, bad := range []string{"s3://", "ftp://x/y", "s3://b//p", "s3://b/../p", "s3://b/p/./q", "s3://b/p/.."} {
		if _, err := target.New(bad, target.S3Config{AccessKeyID: "a", SecretAccessKey: "b"}); err == nil {
			t.Errorf("target %q accepted", bad)
		}
	}
	if _, err := target.New("s3://b/p", target.S3Config{Endpoint: "http://h/path", AccessKeyID: "a", SecretAccessKey: "b"}); err == nil {
		t.Error("an endpoint with a path was accepted")
	}
}

func TestSplitObject(t *testing.T) {
	for in, want := range map[string]string{
		"s3://b/p/q/name.tar.zst": "s3://b/p/q name.tar.zst",
		"s3://b/name":             "s3://b name",
		"/srv/backups/x.json.gz":  "/srv/backups x.json.gz",
	} {
		spec, name, err := target.SplitObject(in)
		if err != nil || spec+" "+name != want {
			t.Errorf("SplitObject(%q) = %q %q %v, want %s", in, spec, name, err, want)
		}
	}
	for _, bad := range []string{"s3://bucket", "s3://b/p/", "noslash"} {
		if _, _, err := target.SplitObject(bad); err == nil {
			t.Errorf("SplitObject(%q): no error", bad)
		}
	}
}

// A server killed mid-upload: the put fails, no object is listed under
// the name, and once the server is back the next put succeeds and the
// cut-off upload's parts can be aborted.
func TestS3KilledMidUpload(t *testing.T) {
	srv := s3server.Start(t)
	srv.MakeBucket(t, "roost")
	tg := newS3(t, srv, "s3://roost/p")
	chunk := make([]byte, 1<<20)
	rand.Read(chunk)
	killed := false
	start := time.Now()
	_, err := tg.Put(context.Background(), "big.bin", func(w io.Writer) error {
		for i := 0; i < 200; i++ {
			if i == 40 && !killed { // two parts sent, the third under way
				srv.Kill()
				killed = true
			}
			if _, err := w.Write(chunk); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		t.Fatal("put survived the server's death")
	}
	t.Logf("put failed after %s: %v", time.Since(start).Round(time.Millisecond), err)
	srv.Restart(t)
	if got := names(t, tg); len(got) != 0 {
		t.Fatalf("after the cut-off upload the target lists %v", got)
	}
	put(t, tg, "big2.bin", chunk)
	aborted, err := tg.(*target.S3).AbortIncomplete(context.Background(), func(n string) bool { return n == "big.bin" }, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("aborted the unfinished uploads of %v", aborted)
	if got := strings.Join(names(t, tg), ","); got != "big2.bin" {
		t.Fatalf("list = %s", got)
	}
}
