package e2e

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestNodeBadConfig: each kind of bad config stops `roost start` at once
// with a non-zero exit and a message naming where (file and line, or env
// var), the key and what was expected; nothing is created in the data
// dir (it does not even come into being).
func TestNodeBadConfig(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		file string   // config file content; "" for none
		env  []string // extra env
		// keys the file sets that the harness ports would override by env
		// (env wins): their ROOST_ vars are left out.
		fileKeys []string
		want     []string // message parts; FILE is replaced by the file's path
		exact    string   // if set, all of stderr
	}{
		{
			name: "toml syntax error",
			file: "node.name = \"a\"\n\nlisteners.tcp.default.bind = \n[api]\nbind = \"127.0.0.1:1\"\n",
			exact: "roost: FILE:3:30: TOML syntax error: expected a value after \"=\"\n" +
				"    3 | listeners.tcp.default.bind =\n" +
				"      |                              ^\n",
		},
		{
			name: "unclosed table header",
			file: "[node\nname = \"a\"\n",
			exact: "roost: FILE:1:6: TOML syntax error: missing \"]\" to close the table header\n" +
				"    1 | [node\n" +
				"      |      ^\n",
		},
		{
			name: "unknown key",
			file: "[node]\nname = \"a\"\nfoo = 1\n",
			want: []string{"FILE:3:", "node.foo", "unknown key"},
		},
		{
			name: "unknown dotted key",
			file: "listeners.tcp.default.bnd = \"127.0.0.1:1\"\n",
			want: []string{"FILE:1:", "listeners.tcp.default.bnd", "unknown key"},
		},
		{
			name: "wrong type",
			file: "# comment\n[authn]\nenable = \"yes\"\n",
			want: []string{"FILE:3:", "authn.enable", "expected a boolean", `"yes"`},
		},
		{
			name:     "wrong type number for string",
			file:     "api.bind = 18083\n",
			fileKeys: []string{"ROOST_API__BIND"},
			want:     []string{"FILE:1:", "api.bind", "expected", "string"},
		},
		{
			name:     "bad address",
			file:     "\nlisteners.tcp.default.bind = \"nonsense\"\n",
			fileKeys: []string{"ROOST_LISTENERS__TCP__DEFAULT__BIND"},
			want:     []string{"FILE:2:", "listeners.tcp.default.bind", "host:port", `"nonsense"`},
		},
		{
			name:     "bad port",
			file:     "api.bind = \"127.0.0.1:99999\"\n",
			fileKeys: []string{"ROOST_API__BIND"},
			want:     []string{"FILE:1:", "api.bind", "host:port", "port from 0 to 65535", `"127.0.0.1:99999"`},
		},
		{
			name: "bad enum value",
			file: "authn.password_hash = \"md4\"\n",
			want: []string{"FILE:1:", "authn.password_hash", `"md4"`, "sha256", "bcrypt"},
		},
		{
			name: "bad env value",
			env:  []string{"ROOST_AUTHN__ENABLE=maybe"},
			want: []string{"ROOST_AUTHN__ENABLE", "authn.enable", "boolean", `"maybe"`},
		},
		{
			name: "bad env address over a good file",
			file: "api.bind = \"127.0.0.1:18083\"\n",
			env:  []string{"ROOST_API__BIND=1.2.3"},
			want: []string{"ROOST_API__BIND", "api.bind", "host:port", `"1.2.3"`},
		},
		{
			name: "two problems reported at once",
			file: "authn.password_hash = \"md4\"\nauthz.no_match = \"maybe\"\n",
			want: []string{"FILE:1:", "authn.password_hash", "FILE:2:", "authz.no_match", `"maybe"`},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := realPath(t, shortTempDir(t))
			data := filepath.Join(dir, "data")
			p := newPorts(t)
			var portEnv []string
			for _, kv := range p.env() {
				name, _, _ := strings.Cut(kv, "=")
				if !slices.Contains(tc.fileKeys, name) {
					portEnv = append(portEnv, kv)
				}
			}
			env := cleanEnv(append(append(portEnv, "ROOST_NODE__DATA_DIR="+data), tc.env...)...)
			args := []string{"start"}
			conf := filepath.Join(dir, "roost.conf")
			if tc.file != "" {
				writeFile(t, conf, tc.file)
				args = append(args, "--config", conf)
			}
			r := runBin(t, roostBin, dir, env, 20*time.Second, args...)
			if r.Code <= 0 {
				t.Fatalf("start with a bad config: want a non-zero exit, got %s", r)
			}
			if r.Elapsed > 5*time.Second {
				t.Errorf("took %s to fail, want at once", r.Elapsed)
			}
			for _, w := range tc.want {
				mustContain(t, "error", r.Stderr, strings.ReplaceAll(w, "FILE", conf))
			}
			if want := strings.ReplaceAll(tc.exact, "FILE", conf); tc.exact != "" && r.Stderr != want {
				t.Errorf("stderr:\n%s\nwant exactly:\n%s", r.Stderr, want)
			}
			if strings.Contains(r.Stderr, "level=INFO") {
				t.Errorf("node got as far as logging before refusing the config:\n%s", r.Stderr)
			}
			if _, err := os.Lstat(data); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("data dir %s exists after a refused start (%v)", data, err)
			}
			for _, a := range []string{p.MQTT, p.API} {
				if !portClosed(a) {
					t.Errorf("port %s open after a refused start", a)
				}
			}
		})
	}
}
