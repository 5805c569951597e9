package main

import (
	"bytes"
	"crypto/subtle"
	"strings"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// The hooks are written here rather than taken from mochi's hooks/auth
// package: that package pulls in a YAML module the Roost module does not
// otherwise need. allowAll is the same as mochi's auth.AllowHook.

// allowAll lets every client connect and use every topic.
type allowAll struct {
	mqtt.HookBase
}

func (h *allowAll) ID() string { return "bench-allow-all" }

func (h *allowAll) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnConnectAuthenticate, mqtt.OnACLCheck}, []byte{b})
}

func (h *allowAll) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }

func (h *allowAll) OnACLCheck(*mqtt.Client, string, bool) bool { return true }

// singleUser admits one username/password and lets it publish and subscribe
// under one topic filter, so auth and an ACL check run on every connect and
// every message, as with Mosquitto's password_file + acl_file.
type singleUser struct {
	mqtt.HookBase
	username, password []byte
	filter             string
}

func (h *singleUser) ID() string { return "bench-single-user" }

func (h *singleUser) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnConnectAuthenticate, mqtt.OnACLCheck}, []byte{b})
}

func (h *singleUser) OnConnectAuthenticate(_ *mqtt.Client, pk packets.Packet) bool {
	u := subtle.ConstantTimeCompare(pk.Connect.Username, h.username)
	p := subtle.ConstantTimeCompare(pk.Connect.Password, h.password)
	return u&p == 1
}

func (h *singleUser) OnACLCheck(cl *mqtt.Client, topic string, _ bool) bool {
	return bytes.Equal(cl.Properties.Username, h.username) && matchFilter(h.filter, topic)
}

// matchFilter reports whether an MQTT topic filter (with + and #) matches a
// topic name or, for subscriptions, an equal or narrower filter.
func matchFilter(filter, topic string) bool {
	f := strings.Split(filter, "/")
	t := strings.Split(topic, "/")
	for i, level := range f {
		switch {
		case level == "#":
			return true
		case i >= len(t):
			return false
		case level == "+":
			if t[i] == "#" {
				return false
			}
		case level != t[i]:
			return false
		}
	}
	return len(f) == len(t)
}
