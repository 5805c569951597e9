package main

import "testing"

func TestMatchFilter(t *testing.T) {
	for _, c := range []struct {
		filter, topic string
		want          bool
	}{
		{"bench/#", "bench/1/x", true},
		{"bench/#", "bench", true},
		{"bench/#", "bench/#", true},
		{"bench/#", "other/x", false},
		{"bench/#", "#", false},
		{"bench/+/x", "bench/7/x", true},
		{"bench/+/x", "bench/7/y", false},
		{"bench/+", "bench/#", false},
		{"bench/retained/1", "bench/retained/1", true},
		{"bench/retained/1", "bench/retained/1/2", false},
	} {
		if got := matchFilter(c.filter, c.topic); got != c.want {
			t.Errorf("matchFilter(%q, %q) = %t, want %t", c.filter, c.topic, got, c.want)
		}
	}
}
