package api

import "strings"

// Topic names, filters and ACL topics are validated by the broker's rules
// (broker.ValidTopicName, broker.ValidFilter, broker.ValidACLTopic) so the
// API refuses exactly what the broker would.

// matchFilter reports whether topic matches filter under MQTT rules; a
// wildcard in the first level does not match a topic starting with '$'.
func matchFilter(filter, topic string) bool {
	if strings.HasPrefix(topic, "$") && (strings.HasPrefix(filter, "+") || strings.HasPrefix(filter, "#")) {
		return false
	}
	for {
		fl, frest, fmore := strings.Cut(filter, "/")
		if fl == "#" {
			return true
		}
		tl, trest, tmore := strings.Cut(topic, "/")
		if fl != "+" && fl != tl {
			return false
		}
		if !fmore && !tmore {
			return true
		}
		if !fmore {
			return false
		}
		if !tmore {
			// "a/#" matches "a": the parent level.
			return frest == "#"
		}
		filter, topic = frest, trest
	}
}
