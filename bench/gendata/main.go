// Command gendata writes a valid roost-export file (format version 1,
// docs/data-export-import.md) with a synthetic data set for
// bench/data.sh: N users with distinct salted sha256 hashes, ACL rules,
// and retained messages with payloads of a given size. It writes the
// document in its compact form, so the checksum is the sha256 of every
// byte from the opening '{' up to and including the ',' before
// "checksum" (the documented algorithm; internal/backup's writer needs a
// store transaction, so it is not reused here). Records are written in
// key order, ACL ids increasing, as an export holds them.
//
// Usage: gendata -o FILE [-users N] [-acl N] [-retained N] [-payload BYTES]
package main

import (
	"bufio"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"hash"
	"io"
	"log"
	"os"
	"strconv"
	"time"

	"github.com/roostmq/roost/internal/store"
)

type hashWriter struct {
	w       io.Writer
	h       hash.Hash
	hashing bool
	err     error
}

func (c *hashWriter) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if c.hashing {
		c.h.Write(p)
	}
	n, err := c.w.Write(p)
	c.err = err
	return n, err
}

// aclRecord is store.ACLRule with its members in alphabetical order, as
// the store keeps ACL rules.
type aclRecord struct {
	Action     string    `json:"action"`
	CreatedAt  time.Time `json:"created_at"`
	ID         uint64    `json:"id"`
	Kind       string    `json:"kind"`
	Permission string    `json:"permission"`
	Topic      string    `json:"topic"`
	V          int       `json:"v"`
	Value      string    `json:"value,omitempty"`
}

func main() {
	out := flag.String("o", "", "output file (plain JSON)")
	users := flag.Int("users", 1_000_000, "users")
	acl := flag.Int("acl", 100_000, "ACL rules")
	retained := flag.Int("retained", 100_000, "retained messages")
	payload := flag.Int("payload", 1024, "retained payload size, bytes")
	flag.Parse()
	if *out == "" {
		log.Fatal("gendata: -o FILE is required")
	}
	f, err := os.Create(*out)
	if err != nil {
		log.Fatal(err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	w := &hashWriter{w: bw, h: sha256.New(), hashing: true}
	now := time.Now().UTC().Truncate(time.Microsecond)
	enc := func(v any) {
		b, err := json.Marshal(v)
		if err != nil {
			log.Fatal(err)
		}
		w.Write(b)
	}
	fmt.Fprintf(w, `{"format":"roost-export","version":1,"roost_version":"gendata","cluster_id":"bench","source_node":"gendata","raft_index":1,"created_at":`)
	enc(now)
	w.Write([]byte(`,"tables":{"users":[`))
	salt := make([]byte, 16)
	for i := range *users {
		if i > 0 {
			w.Write([]byte(","))
		}
		rand.Read(salt)
		sh := hex.EncodeToString(salt)
		sum := sha256.Sum256([]byte(sh + "pw-" + strconv.Itoa(i)))
		enc(store.User{V: 1, Kind: store.KindUsername, ID: fmt.Sprintf("user-%07d", i), PasswordHash: hex.EncodeToString(sum[:]),
			Salt: sh, Algorithm: "sha256", SaltPosition: "prefix", CreatedAt: now})
	}
	w.Write([]byte(`],"acl":[`))
	for i := range *acl {
		if i > 0 {
			w.Write([]byte(","))
		}
		perm := "allow"
		if i%10 == 9 {
			perm = "deny"
		}
		enc(aclRecord{Action: "all", CreatedAt: now, ID: uint64(i + 1), Kind: store.KindUsername, Permission: perm,
			Topic: fmt.Sprintf("t/%07d/#", i), V: 1, Value: fmt.Sprintf("user-%07d", i)})
	}
	w.Write([]byte(`],"banned":[],"retained":[`))
	body := make([]byte, *payload)
	for i := range *retained {
		if i > 0 {
			w.Write([]byte(","))
		}
		rand.Read(body)
		// Not under bench/: loadgen's subscribers use bench/#, and would
		// get every one of these at subscribe time in a latency run.
		enc(store.Retained{V: 1, Topic: fmt.Sprintf("gen/r/%07d", i), Payload: body, QoS: 1, From: "gendata", Created: now})
	}
	w.Write([]byte(`],"api_keys":[],"admins":[],"config":[]},"config_files":[],"counts":`))
	fmt.Fprintf(w, `{"users":%d,"acl":%d,"banned":0,"retained":%d,"api_keys":0,"admins":0,"config":0},`, *users, *acl, *retained)
	w.hashing = false
	fmt.Fprintf(w, "\"checksum\":\"sha256:%x\"}\n", w.h.Sum(nil))
	if w.err != nil {
		log.Fatal(w.err)
	}
	if err := bw.Flush(); err != nil {
		log.Fatal(err)
	}
	if err := f.Close(); err != nil {
		log.Fatal(err)
	}
}
