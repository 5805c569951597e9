package foreign

import "testing"

func TestDetect(t *testing.T) {
	// The head of the file mosquitto_ctrl dynsec init writes (2.0.11).
	mosqInit := `{
	"clients":	[{
			"username":	"admin",
			"textName":	"Dynsec admin user",
			"password":	"4FoF2R5184fOWs5FhW4z5/g+OLMA9dXAYOuhWNz3TTXo8gdlTlbQqDHmzuzqwByrW2tNM3/qrEPzsIhhFLcNNw==",`
	cases := []struct {
		name, head, want string
	}{
		{"emqx export", `{"version":"4.3","rules":[],"resources":[],"blacklist":[],"apps":[{"id":"admin"`, "emqx4"},
		{"emqx pretty, jq-sorted keys", "{\n  \"acl_mnesia\": [\n    {\n      \"topic\": \"Topic/A\",", "emqx4"},
		{"emqx version only", `{"version": "4.4"`, "emqx4"},
		{"emqx version as the last key", `{"date":"x","users":[],"version":"4.2"}`, "emqx4"},
		{"mosquitto init file, cut", mosqInit, "mosquitto-dynsec"},
		{"mosquitto saved file", "\xef\xbb\xbf{\n\t\"defaultACLAccess\":\t{\n\t\t\"publishClientSend\":\tfalse,", "mosquitto-dynsec"},
		{"mosquitto roles only", `{"roles":[{"rolename":"r","acls":[]}]}`, "mosquitto-dynsec"},
		{"key cut after its name", `{"clients"`, "mosquitto-dynsec"},
		{"roost export", `{"format":"roost-export","format_version":1,"tables":{"users":`, ""},
		{"emqx 5", `{"version":"5.1","rules":[]}`, "emqx4"}, // the EMQX reader names the version
		{"both kinds of keys", `{"clients":[],"auth_mnesia":[]}`, ""},
		{"other object", `{"name":"x","users":[]}`, ""},
		{"array", `[{"version":"4.3"}]`, ""},
		{"not JSON", `version: 4.3`, ""},
		{"empty", ``, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Detect([]byte(c.head)); got != c.want {
				t.Errorf("Detect = %q, want %q", got, c.want)
			}
		})
	}
}
