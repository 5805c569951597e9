package e2e

import (
	"testing"
	"time"
)

// TestCLIUsageErrors: the real binary answers a mistyped command, at any
// depth, with close matches, and a command short of arguments with the
// missing ones, its usage and a pointer to --help; exit code 1, nothing
// on stdout.
func TestCLIUsageErrors(t *testing.T) {
	t.Parallel()
	dir := shortTempDir(t)
	env := cleanEnv("ROOST_NODE__DATA_DIR=" + dir + "/data")
	cases := []struct {
		args   []string
		stderr string
	}{
		{[]string{"strat"}, "roost: unknown command \"strat\" for \"roost\"\n\nDid you mean this?\n\tstart\n\nRun \"roost --help\" for the commands.\n"},
		{[]string{"ctl", "usres"}, "roost: unknown command \"usres\" for \"roost ctl\"\n\nDid you mean this?\n\tusers\n\nRun \"roost ctl --help\" for the commands.\n"},
		{[]string{"ctl", "users", "ad", "bob", "pw"}, "roost: unknown command \"ad\" for \"roost ctl users\"\n\nDid you mean this?\n\tadd\n\nRun \"roost ctl users --help\" for the commands.\n"},
		{[]string{"ctl", "users", "add"}, "roost: missing arguments USER PASSWORD\nusage: roost ctl users add USER PASSWORD [flags]\nRun \"roost ctl users add --help\" for more.\n"},
		{[]string{"ctl", "users", "add", "bob"}, "roost: missing argument PASSWORD\nusage: roost ctl users add USER PASSWORD [flags]\nRun \"roost ctl users add --help\" for more.\n"},
		{[]string{"ctl", "banned", "del", "clientid"}, "roost: missing argument VALUE\nusage: roost ctl banned del KIND VALUE [flags]\nRun \"roost ctl banned del --help\" for more.\n"},
		{[]string{"backup", "inspect"}, "roost: missing argument FILE\nusage: roost backup inspect FILE [flags]\nRun \"roost backup inspect --help\" for more.\n"},
		{[]string{"ctl", "status", "now"}, "roost: roost ctl status takes no arguments, got \"now\"\nusage: roost ctl status [flags]\nRun \"roost ctl status --help\" for more.\n"},
		{[]string{"ctl", "users", "list", "--bogus"}, "roost: unknown flag: --bogus\nRun \"roost ctl users list --help\" for more.\n"},
	}
	for _, c := range cases {
		r := runBin(t, roostBin, dir, env, 20*time.Second, c.args...)
		if r.Code != 1 || r.Stdout != "" || r.Stderr != c.stderr {
			t.Errorf("roost %v: %s\nwant exit 1 and stderr exactly:\n%s", c.args, r, c.stderr)
		}
	}
}
