package config

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestUserIDTypeBoth(t *testing.T) {
	s := newSandbox(t)
	s.withConfig("authn.user_id_type = \"both\"\n")
	if got := s.load().Config.Authn.UserIDType; got != "both" {
		t.Fatalf("user_id_type %q, want both", got)
	}
}

func TestParseOverride(t *testing.T) {
	for _, v := range []string{"username", "clientid", "both"} {
		got, err := ParseOverride(OverrideUserIDType, json.RawMessage(`"`+v+`"`))
		if err != nil || got != v {
			t.Errorf("%s: %q %v", v, got, err)
		}
	}
	for _, c := range []struct {
		key, value, want string
	}{
		{OverrideUserIDType, `"email"`, `authn.user_id_type: expected one of username|clientid|both, got "email"`},
		{OverrideUserIDType, `1`, "must be a JSON string"},
		{OverrideUserIDType, `not json`, "must be a JSON string"},
		{"mqtt.max_inflight", `5`, `"mqtt.max_inflight" is not a key the nodes follow at run time (those are: authn.user_id_type)`},
	} {
		if _, err := ParseOverride(c.key, json.RawMessage(c.value)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s = %s: %v, want %q", c.key, c.value, err, c.want)
		}
	}
}
