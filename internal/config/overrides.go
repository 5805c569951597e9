package config

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// Cluster config overrides are records of the replicated config table
// (store.ConfigOverride): one value for the whole cluster, which every
// node follows at run time, before its own config file says otherwise.
// Only the keys listed here are followed; others are kept and exported
// but change nothing.

// OverrideUserIDType is the override of authn.user_id_type. The EMQX 4
// import sets it to "both" when it imports users by client id.
const OverrideUserIDType = "authn.user_id_type"

// RuntimeOverrides lists the keys the nodes follow, each with its
// accepted values.
var RuntimeOverrides = map[string][]string{
	OverrideUserIDType: UserIDTypes,
}

// ParseOverride checks the JSON value of a cluster config override of
// a followed key and returns it. A key that is not followed is an error.
func ParseOverride(key string, value json.RawMessage) (string, error) {
	allowed, ok := RuntimeOverrides[key]
	if !ok {
		keys := make([]string, 0, len(RuntimeOverrides))
		for k := range RuntimeOverrides {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		return "", fmt.Errorf("%q is not a key the nodes follow at run time (those are: %s)", key, strings.Join(keys, ", "))
	}
	var s string
	if err := json.Unmarshal(value, &s); err != nil {
		return "", fmt.Errorf("%s: the value must be a JSON string, one of %s; got %s", key, strings.Join(allowed, "|"), value)
	}
	if !slices.Contains(allowed, s) {
		return "", fmt.Errorf("%s: expected one of %s, got %q", key, strings.Join(allowed, "|"), s)
	}
	return s, nil
}
