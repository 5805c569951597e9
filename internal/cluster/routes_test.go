package cluster

import (
	"testing"

	"github.com/roostmq/roost/internal/broker"
)

func TestMatchTopic(t *testing.T) {
	cases := []struct {
		f, t string
		want bool
	}{
		{"a/b", "a/b", true}, {"a/+", "a/b", true}, {"a/+", "a/b/c", false}, {"a/#", "a", true},
		{"a/#", "a/b/c", true}, {"#", "a/b", true}, {"#", "$SYS/x", false}, {"+/b", "$x/b", false},
		{"a/b", "a/c", false}, {"+", "a", true}, {"+", "a/b", false}, {"a/+/c", "a//c", true},
		{"a", "a/b", false}, {"a/b/c", "a/b", false},
	}
	for _, c := range cases {
		if got := broker.MatchTopic(c.f, c.t); got != c.want {
			t.Errorf("MatchTopic(%q, %q) = %v", c.f, c.t, got)
		}
	}
}

func TestPlanSharedExactlyOne(t *testing.T) {
	r := newRouteTable()
	r.replace("b", []string{"$share/g/s/#", "x/#"})
	r.replace("c", []string{"$share/g/s/#"})
	counts := map[string]int{}
	for i := 0; i < 300; i++ {
		targets, skip := r.plan("a", "s/1", []string{"$share/g/s/#"})
		chosen := ""
		for node, shared := range targets {
			if len(shared) == 1 {
				chosen = node
			}
		}
		if chosen == "" {
			if len(skip) != 0 {
				t.Fatal("local group skipped but no remote pick")
			}
			chosen = "a"
		} else if len(skip) != 1 {
			t.Fatal("remote pick but local not skipped")
		}
		counts[chosen]++
		if _, ok := targets["b"]; ok && chosen != "b" {
			t.Fatal("b got a message it has no plain route for")
		}
	}
	if counts["a"] != 100 || counts["b"] != 100 || counts["c"] != 100 {
		t.Fatalf("uneven shared picks: %v", counts)
	}
}
