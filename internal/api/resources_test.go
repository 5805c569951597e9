package api

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/roostmq/roost/internal/store"
)

func TestACL(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var r1, r2 ACLRule
	e.expect(e.do("POST", "/api/v1/acl", ACLInput{Kind: "username", Value: "alice", Topic: "users/${username}/#", Action: "publish", Permission: "allow"}), http.StatusCreated, &r1)
	e.expect(e.do("POST", "/api/v1/acl", ACLInput{Kind: "all", Topic: "eq a/#", Action: "all", Permission: "deny"}), http.StatusCreated, &r2)
	if r1.ID == 0 || r2.ID <= r1.ID || r1.Topic != "users/${username}/#" || r2.Kind != "all" {
		t.Fatalf("created %+v %+v", r1, r2)
	}
	var got ACLRule
	e.expect(e.do("GET", fmt.Sprintf("/api/v1/acl/%d", r2.ID), nil), http.StatusOK, &got)
	if got.ID != r2.ID || got.Topic != "eq a/#" || got.Permission != "deny" {
		t.Fatalf("get %+v", got)
	}

	var bulk struct{ Data []ACLRule }
	var in []ACLInput
	for i := range 12 {
		in = append(in, ACLInput{Kind: "clientid", Value: fmt.Sprint("c", i), Topic: "t/+", Action: "subscribe", Permission: "allow"})
	}
	e.expect(e.do("POST", "/api/v1/acl/bulk", in), http.StatusCreated, &bulk)
	for i, r := range bulk.Data {
		if r.ID != r2.ID+uint64(i)+1 || r.Value != fmt.Sprint("c", i) {
			t.Fatalf("bulk rule %d: %+v (rules keep their order)", i, r)
		}
	}

	var page Page[ACLRule]
	e.expect(e.do("GET", "/api/v1/acl?limit=5&page=2", nil), http.StatusOK, &page)
	if page.Meta != (Meta{Page: 2, Limit: 5, Count: 14, HasNext: true}) || page.Data[0].ID != r1.ID+5 {
		t.Fatalf("page 2: %+v", page)
	}

	e.expect(e.do("DELETE", fmt.Sprintf("/api/v1/acl/%d", r1.ID), nil), http.StatusNoContent, nil)
	e.expectErr(e.do("DELETE", fmt.Sprintf("/api/v1/acl/%d", r1.ID), nil), http.StatusNotFound, CodeNotFound, "no ACL rule")
	e.expectErr(e.do("GET", "/api/v1/acl/abc", nil), http.StatusNotFound, CodeNotFound, "abc")
	e.expect(e.do("GET", "/api/v1/acl", nil), http.StatusOK, &page)
	if page.Meta.Count != 13 || page.Data[0].ID != r2.ID {
		t.Fatalf("after delete: %+v", page.Meta)
	}

	bad := []struct {
		in   string
		want string
	}{
		{`{"kind":"username","topic":"a","action":"publish","permission":"allow"}`, `field "value": required`},
		{`{"kind":"all","value":"x","topic":"a","action":"publish","permission":"allow"}`, `field "value": must be empty`},
		{`{"kind":"all","topic":"a/#/b","action":"publish","permission":"allow"}`, `field "topic": topic filter "a/#/b": # must be the last level`},
		{`{"kind":"all","topic":"a/b+","action":"publish","permission":"allow"}`, `field "topic": topic filter "a/b+": wildcard "b+" must be a whole level`},
		{`{"kind":"all","topic":"","action":"publish","permission":"allow"}`, `field "topic"`},
		{`{"kind":"all","topic":"a","permission":"allow"}`, `field "action": required`},
		{`{"kind":"all","topic":"a","action":"read","permission":"allow"}`, `field "action": must be one of publish, subscribe, all`},
		{`{"kind":"all","topic":"a","action":"all","permission":"maybe"}`, `field "permission"`},
		{`{"kind":"group","topic":"a","action":"all","permission":"allow"}`, `field "kind"`},
		{`{"kind":"all","topic":"a","action":"all","permission":"allow","id":3}`, `field "id": unknown field`},
	}
	for _, c := range bad {
		e.expectErr(e.do("POST", "/api/v1/acl", c.in), http.StatusBadRequest, CodeBadRequest, c.want)
	}
	e.expectErr(e.do("POST", "/api/v1/acl/bulk", `[{"kind":"all","topic":"a","action":"all","permission":"allow"},{"kind":"all","topic":"#/a","action":"all","permission":"allow"}]`),
		http.StatusBadRequest, CodeBadRequest, `field "[1].topic"`)
}

func TestBanned(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var b Ban
	e.expect(e.do("POST", "/api/v1/banned", BanInput{Kind: "clientid", Value: "bad-client", Reason: "spam", Until: "1h"}), http.StatusCreated, &b)
	if b.Kind != "clientid" || b.Reason != "spam" || b.By != "local:ctl" || b.Expired ||
		b.Until.Sub(time.Now()) < 59*time.Minute || b.Until.Sub(time.Now()) > time.Hour+time.Second {
		t.Fatalf("ban %+v", b)
	}
	e.expectErr(e.do("POST", "/api/v1/banned", BanInput{Kind: "clientid", Value: "bad-client"}), http.StatusConflict, CodeAlreadyExists, "clientid:bad-client")

	until := time.Now().Add(48 * time.Hour).UTC().Truncate(time.Second)
	e.expect(e.do("POST", "/api/v1/banned", BanInput{Kind: "peerhost", Value: "10.1.2.3/8", Until: until.Format(time.RFC3339)}), http.StatusCreated, &b)
	if b.Value != "10.0.0.0/8" || !b.Until.Equal(until) {
		t.Fatalf("CIDR ban %+v", b)
	}
	b = Ban{}
	e.expect(e.do("POST", "/api/v1/banned", BanInput{Kind: "peerhost", Value: "::ffff:192.168.0.1"}), http.StatusCreated, &b)
	if b.Value != "192.168.0.1" || !b.Until.IsZero() {
		t.Fatalf("IP ban %+v", b)
	}
	e.expect(e.do("POST", "/api/v1/banned", BanInput{Kind: "username", Value: "mallory"}), http.StatusCreated, nil)

	// An expired ban may be replaced.
	e.put(store.TableBanned, "username:old", store.Ban{V: 1, Kind: "username", Value: "old", At: time.Now().Add(-2 * time.Hour), Until: time.Now().Add(-time.Hour)})
	e.expect(e.do("GET", "/api/v1/banned/username/old", nil), http.StatusOK, &b)
	if !b.Expired {
		t.Fatalf("expired ban shown as %+v", b)
	}
	e.expect(e.do("POST", "/api/v1/banned", BanInput{Kind: "username", Value: "old"}), http.StatusCreated, nil)

	var page Page[Ban]
	e.expect(e.do("GET", "/api/v1/banned", nil), http.StatusOK, &page)
	if page.Meta.Count != 5 {
		t.Fatalf("list: %+v", page)
	}
	e.expect(e.do("GET", "/api/v1/banned?kind=peerhost", nil), http.StatusOK, &page)
	if page.Meta.Count != 2 || page.Data[0].Kind != "peerhost" {
		t.Fatalf("peerhost list: %+v", page)
	}
	e.expect(e.do("GET", "/api/v1/banned?kind=username&limit=1", nil), http.StatusOK, &page)
	if len(page.Data) != 1 || page.Meta.Count != 2 || !page.Meta.HasNext {
		t.Fatalf("username page: %+v", page)
	}

	// A CIDR in the path, escaped or not, spelled canonically or not.
	e.expect(e.do("GET", "/api/v1/banned/peerhost/10.9.9.9%2F8", nil), http.StatusOK, nil)
	e.expect(e.do("DELETE", "/api/v1/banned/peerhost/10.0.0.0/8", nil), http.StatusNoContent, nil)
	e.expectErr(e.do("DELETE", "/api/v1/banned/peerhost/10.0.0.0/8", nil), http.StatusNotFound, CodeNotFound, "peerhost:10.0.0.0/8")
	e.expect(e.do("DELETE", "/api/v1/banned/clientid/bad-client", nil), http.StatusNoContent, nil)
	e.expectErr(e.do("DELETE", "/api/v1/banned/group/x", nil), http.StatusNotFound, CodeNotFound, "group")

	bad := []struct {
		in   BanInput
		want string
	}{
		{BanInput{Kind: "peerhost", Value: "10.0.0.256"}, `field "value": not an IP address`},
		{BanInput{Kind: "peerhost", Value: "10.0.0.0/33"}, `field "value": not a CIDR block`},
		{BanInput{Kind: "clientid"}, `field "value": required`},
		{BanInput{Kind: "ip", Value: "x"}, `field "kind": must be one of clientid, username, peerhost`},
		{BanInput{Kind: "clientid", Value: "x", Until: "tomorrow"}, `field "until": expected an RFC 3339 time`},
		{BanInput{Kind: "clientid", Value: "x", Until: "2001-01-01T00:00:00Z"}, `field "until": 2001-01-01T00:00:00Z is in the past`},
		{BanInput{Kind: "clientid", Value: "x", Until: "-1h"}, `field "until": duration "-1h" is not positive`},
	}
	for _, c := range bad {
		e.expectErr(e.do("POST", "/api/v1/banned", c.in), http.StatusBadRequest, CodeBadRequest, c.want)
	}
}

func TestRetained(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	now := time.Now().UTC()
	for _, topic := range []string{"a/b", "a/c", "a/b/c", "x", "$SYS/up", "a//b", "/lead", "a/../b"} {
		e.put(store.TableRetained, topic, store.Retained{V: 1, Topic: topic, Payload: []byte("payload of " + topic), QoS: 1, From: "pub", Created: now})
	}
	e.put(store.TableRetained, "old", store.Retained{V: 1, Topic: "old", Payload: []byte("p"), Created: now.Add(-time.Hour), MessageExpiry: 60})

	var page Page[RetainedSummary]
	e.expect(e.do("GET", "/api/v1/retained", nil), http.StatusOK, &page)
	if page.Meta.Count != 9 {
		t.Fatalf("all: %+v", page.Meta)
	}
	filters := map[string][]string{
		"a/+":    {"a/b", "a/c"},
		"a/#":    {"a/../b", "a//b", "a/b", "a/b/c", "a/c"},
		"#":      {"/lead", "a/../b", "a//b", "a/b", "a/b/c", "a/c", "old", "x"},
		"$SYS/#": {"$SYS/up"},
		"+/+":    {"/lead", "a/b", "a/c"},
		"x":      {"x"},
	}
	for f, want := range filters {
		e.expect(e.do("GET", "/api/v1/retained?topic="+strings.ReplaceAll(strings.ReplaceAll(f, "#", "%23"), "+", "%2B"), nil), http.StatusOK, &page)
		var got []string
		for _, m := range page.Data {
			got = append(got, m.Topic)
		}
		if strings.Join(got, " ") != strings.Join(want, " ") || page.Meta.Count != len(want) {
			t.Errorf("filter %q: got %q (count %d), want %q", f, got, page.Meta.Count, want)
		}
	}
	e.expect(e.do("GET", "/api/v1/retained?topic=%23&limit=2&page=2", nil), http.StatusOK, &page)
	if page.Meta != (Meta{Page: 2, Limit: 2, Count: 8, HasNext: true}) || page.Data[0].Topic != "a//b" {
		t.Fatalf("filtered page: %+v", page)
	}
	e.expectErr(e.do("GET", "/api/v1/retained?topic=a/%23/b", nil), http.StatusBadRequest, CodeBadRequest, `"topic"`)

	var m RetainedMessage
	e.expect(e.do("GET", "/api/v1/retained/a/b/c", nil), http.StatusOK, &m)
	if m.Topic != "a/b/c" || string(m.Payload) != "payload of a/b/c" || m.QoS != 1 || m.PayloadSize != 16 || m.Expired {
		t.Fatalf("get: %+v", m)
	}
	e.expect(e.do("GET", "/api/v1/retained/old", nil), http.StatusOK, &m)
	if !m.Expired {
		t.Fatalf("expired message shown as %+v", m)
	}
	// Topics that HTTP path cleaning would change travel with '/' escaped.
	for _, topic := range []string{"a//b", "/lead", "a/../b"} {
		path := "/api/v1/retained/" + strings.ReplaceAll(topic, "/", "%2F")
		e.expect(e.do("GET", path, nil), http.StatusOK, &m)
		if m.Topic != topic {
			t.Fatalf("escaped %q: got %q", topic, m.Topic)
		}
		e.expect(e.do("DELETE", path, nil), http.StatusNoContent, nil)
	}
	e.expect(e.do("DELETE", "/api/v1/retained/a/b", nil), http.StatusNoContent, nil)
	e.expectErr(e.do("DELETE", "/api/v1/retained/a/b", nil), http.StatusNotFound, CodeNotFound, `"a/b"`)
	e.expectErr(e.do("GET", "/api/v1/retained/a/%2B", nil), http.StatusNotFound, CodeNotFound, "wildcards")
	e.expect(e.do("GET", "/api/v1/retained", nil), http.StatusOK, &page)
	if page.Meta.Count != 5 {
		t.Fatalf("after deletes: %+v", page.Meta)
	}
}

func TestStatusMetricsDigest(t *testing.T) {
	t.Parallel()
	started := time.Now().Add(-90 * time.Second)
	e := newEnv(t, func(o *Options) {
		o.Status = func() Status {
			return Status{Node: "roost@h", NodeID: "n1", ClusterID: "c1", Version: "0.1.0", StartedAt: started,
				Listeners: []Listener{{Name: "tcp:default", Type: "tcp", Bind: "0.0.0.0:1883", Running: true}}}
		}
	})
	e.put(store.TableRetained, "t", store.Retained{V: 1, Topic: "t"})
	var st Status
	e.expect(e.do("GET", "/api/v1/status", nil), http.StatusOK, &st)
	if st.Node != "roost@h" || st.UptimeSeconds < 90 || st.Uptime == "" || st.Raft.State != "Leader" ||
		st.Raft.LeaderID != "n1" || st.Raft.Voters != 1 || st.Raft.AppliedIndex == 0 || len(st.Listeners) != 1 {
		t.Fatalf("status %+v", st)
	}

	var m Metrics
	e.expect(e.do("GET", "/api/v1/metrics", nil), http.StatusOK, &m)
	if m.RetainedCount != 1 {
		t.Fatalf("metrics %+v", m)
	}
	e2 := newEnv(t, func(o *Options) { o.Metrics = func() Metrics { return Metrics{Connections: 3, MessagesSent: 9} } })
	e2.expect(e2.do("GET", "/api/v1/metrics", nil), http.StatusOK, &m)
	if m.Connections != 3 || m.MessagesSent != 9 {
		t.Fatalf("metrics %+v", m)
	}

	var d Digest
	e.expect(e.do("GET", "/api/v1/data/digest", nil), http.StatusOK, &d)
	idx, tables, err := e.st.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if d.Index != idx || len(d.Tables) != len(tables) || d.Tables[3] != tables[3] || d.Tables[3].Count != 1 {
		t.Fatalf("digest %+v, want %d %+v", d, idx, tables)
	}
}

func TestUnknownRouteAndMethodAreJSON(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.expectErr(e.do("GET", "/api/v1/nothing", nil), http.StatusNotFound, CodeNotFound, "/api/v1/nothing")
	r := e.do("PATCH", "/api/v1/users", nil)
	e.expectErr(r, http.StatusMethodNotAllowed, CodeMethodNotAllowed, "PATCH")
	if !strings.Contains(r.header.Get("Allow"), "POST") {
		t.Fatalf("Allow: %q", r.header.Get("Allow"))
	}
}
