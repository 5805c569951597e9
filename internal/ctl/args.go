package ctl

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/spf13/cobra"
)

// The positional arguments of every command are read from its Use line
// ("add USER PASSWORD", "download NAME [FILE]"), so the usage shown and
// the arguments checked cannot disagree.

var (
	requiredArg = regexp.MustCompile(`^[A-Z][A-Z0-9_:.-]*(\.\.\.)?$`)
	optionalArg = regexp.MustCompile(`^\[[A-Z][A-Z0-9_:.-]*(\.\.\.)?\]$`)
)

// useArgs is what a Use line says about positional arguments: the names
// of the required ones, how many optional ones may follow, and whether
// the last one repeats. Reading stops at the first flag or flag group.
type useArgs struct {
	required []string
	optional int
	variadic bool
	written  []string // as in the Use line: NAME [FILE]
}

func parseUse(use string) useArgs {
	var u useArgs
	fields := strings.Fields(use)
	for _, f := range fields[min(1, len(fields)):] {
		switch {
		case requiredArg.MatchString(f) && u.optional == 0:
			u.required = append(u.required, strings.TrimSuffix(f, "..."))
		case optionalArg.MatchString(f):
			u.optional++
		default:
			return u
		}
		u.written = append(u.written, f)
		if strings.HasSuffix(f, "...") || strings.HasSuffix(f, "...]") {
			u.variadic = true
			return u
		}
	}
	return u
}

// UseLineArgs checks a command's positional arguments against its Use
// line. A command with subcommands takes none: an argument is an unknown
// subcommand, answered with the close matches. Errors give the usage
// line and point to --help.
func UseLineArgs(cmd *cobra.Command, args []string) error {
	help := fmt.Sprintf("Run %q for more.", cmd.CommandPath()+" --help")
	if cmd.HasSubCommands() {
		if len(args) == 0 {
			return nil
		}
		if cmd.SuggestionsMinimumDistance <= 0 {
			cmd.SuggestionsMinimumDistance = 2
		}
		msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
		if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
			msg += "\n\nDid you mean this?\n\t" + strings.Join(s, "\n\t") + "\n"
		}
		return fmt.Errorf("%s\nRun %q for the commands.", msg, cmd.CommandPath()+" --help")
	}
	u := parseUse(cmd.Use)
	usage := "usage: " + cmd.UseLine()
	switch {
	case len(args) < len(u.required):
		missing := u.required[len(args):]
		noun := "argument"
		if len(missing) > 1 {
			noun += "s"
		}
		return fmt.Errorf("missing %s %s\n%s\n%s", noun, strings.Join(missing, " "), usage, help)
	case !u.variadic && len(args) > len(u.required)+u.optional:
		extra := args[len(u.required)+u.optional]
		if len(u.required)+u.optional == 0 {
			return fmt.Errorf("%s takes no arguments, got %q\n%s\n%s", cmd.CommandPath(), extra, usage, help)
		}
		return fmt.Errorf("unexpected argument %q: %s takes %s\n%s\n%s", extra, cmd.CommandPath(), u, usage, help)
	}
	return nil
}

// String lists the arguments as the Use line writes them.
func (u useArgs) String() string { return strings.Join(u.written, " ") }

// ApplyUseLineArgs makes UseLineArgs the argument check of cmd and of
// every command below it, and makes a flag error point to --help too.
func ApplyUseLineArgs(cmd *cobra.Command) {
	// Subcommands inherit the flag error function.
	cmd.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return fmt.Errorf("%w\nRun %q for more.", err, c.CommandPath()+" --help")
	})
	var apply func(*cobra.Command)
	apply = func(c *cobra.Command) {
		c.Args = UseLineArgs
		if c.HasSubCommands() && !c.Runnable() {
			// cobra checks the arguments of runnable commands only.
			c.RunE = func(c *cobra.Command, _ []string) error { return c.Help() }
		}
		for _, sub := range c.Commands() {
			apply(sub)
		}
	}
	apply(cmd)
}
