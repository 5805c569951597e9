package ctl_test

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/roostmq/roost/internal/ctl"
	"github.com/spf13/cobra"
)

// TestCtlTypoSuggestions: a mistyped subcommand, at any depth, is refused
// with the close matches and a pointer to --help.
func TestCtlTypoSuggestions(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"usres"}, "unknown command \"usres\" for \"ctl\"\n\nDid you mean this?\n\tusers\n\nRun \"ctl --help\" for the commands."},
		{[]string{"usres", "list"}, "unknown command \"usres\" for \"ctl\"\n\nDid you mean this?\n\tusers\n\nRun \"ctl --help\" for the commands."},
		{[]string{"users", "ad"}, "unknown command \"ad\" for \"ctl users\"\n\nDid you mean this?\n\tadd\n\nRun \"ctl users --help\" for the commands."},
		{[]string{"users", "ad", "bob", "pw"}, "unknown command \"ad\" for \"ctl users\"\n\nDid you mean this?\n\tadd\n\nRun \"ctl users --help\" for the commands."},
		{[]string{"cluster", "jion", "h:1"}, "unknown command \"jion\" for \"ctl cluster\"\n\nDid you mean this?\n\tjoin\n\nRun \"ctl cluster --help\" for the commands."},
		{[]string{"data", "fils"}, "unknown command \"fils\" for \"ctl data\"\n\nDid you mean this?\n\tfiles\n\nRun \"ctl data --help\" for the commands."},
		{[]string{"zzzz"}, "unknown command \"zzzz\" for \"ctl\"\nRun \"ctl --help\" for the commands."},
	}
	for _, c := range cases {
		_, err := runCtl(t.TempDir(), c.args...)
		if err == nil || err.Error() != c.want {
			t.Errorf("ctl %s: error\n%v\nwant\n%s", strings.Join(c.args, " "), err, c.want)
		}
	}
}

// TestCtlMissingArguments: every ctl command that takes positional
// arguments, called without them, names each missing one, shows its
// usage line and points to its --help; one with too many names the
// extra one. Nothing is run (no node is needed to get these errors).
func TestCtlMissingArguments(t *testing.T) {
	_, err := runCtl(t.TempDir(), "users", "add", "bob")
	want := "missing argument PASSWORD\nusage: ctl users add USER PASSWORD [flags]\nRun \"ctl users add --help\" for more."
	if err == nil || err.Error() != want {
		t.Errorf("users add bob: error\n%v\nwant\n%s", err, want)
	}
	_, err = runCtl(t.TempDir(), "users", "list", "extra")
	want = "ctl users list takes no arguments, got \"extra\"\nusage: ctl users list [flags]\nRun \"ctl users list --help\" for more."
	if err == nil || err.Error() != want {
		t.Errorf("users list extra: error\n%v\nwant\n%s", err, want)
	}

	// Every leaf of the real tree, from its Use line.
	dir := t.TempDir()
	root := ctl.NewCommand(func() (string, error) { return dir, nil })
	var withArgs int
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.HasSubCommands() {
			for _, s := range c.Commands() {
				walk(s)
			}
			return
		}
		// Merge the global flags, as running it does: UseLine shows [flags].
		c.InheritedFlags()
		path := strings.Fields(c.CommandPath())[1:] // without "ctl"
		var required, optional []string
		for _, f := range strings.Fields(c.Use)[1:] {
			if strings.HasPrefix(f, "-") || strings.HasPrefix(f, "(") || strings.HasPrefix(f, "[-") {
				break
			}
			if strings.HasPrefix(f, "[") {
				optional = append(optional, f)
			} else {
				required = append(required, f)
			}
		}
		_, err := runCtl(dir, path...)
		if len(required) > 0 {
			withArgs++
			noun := "argument"
			if len(required) > 1 {
				noun = "arguments"
			}
			want := fmt.Sprintf("missing %s %s\nusage: %s\nRun %q for more.", noun, strings.Join(required, " "),
				c.UseLine(), c.CommandPath()+" --help")
			if err == nil || err.Error() != want {
				t.Errorf("ctl %s: error\n%v\nwant\n%s", strings.Join(path, " "), err, want)
			}
		}
		// One argument more than the Use line allows.
		extra := append(append([]string{}, path...), make([]string, len(required)+len(optional)+1)...)
		for i := len(path); i < len(extra); i++ {
			extra[i] = fmt.Sprintf("a%d", i)
		}
		if _, err := runCtl(dir, extra...); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%q", extra[len(extra)-1])) ||
			!strings.Contains(err.Error(), "usage: "+c.UseLine()) {
			t.Errorf("ctl %s: error %v, want one naming the extra argument with the usage", strings.Join(extra, " "), err)
		}
	}
	walk(root)
	if withArgs < 15 {
		t.Errorf("only %d ctl commands take arguments; the walk missed some", withArgs)
	}
	if _, err := os.Stat(dir + "/" + ctl.SocketName); err == nil {
		t.Error("a socket appeared")
	}
}
