package main

import (
	"fmt"

	"github.com/roostmq/roost/internal/config"
	"github.com/spf13/cobra"
)

// newConfigCmd is `roost config show`: the configuration a node started
// here would run with, key by key, and where each value came from.
func newConfigCmd(load func() (*config.Loaded, error)) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Show the configuration in effect (roost config show)",
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	var defaults bool
	show := &cobra.Command{
		Use:   "show [--defaults]",
		Short: "Print every config key with its value and where it came from, as TOML (secrets not shown)",
		Long: `Print every config key as TOML, one dotted key per line, with where its
value came from as a comment: the config file and line, the ROOST_* variable,
or "default". The config file and data dir are found as "roost start" finds
them (see "roost paths"). node.cookie, dashboard.default_password and
backup.s3.secret_access_key are never printed. With --defaults, print the
built-in defaults (no config file, no environment).`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			if defaults {
				fmt.Fprint(out, config.FormatEntries("Built-in defaults of roost "+version+" (no config file, no ROOST_* variables).",
					config.DefaultEntries()))
				return nil
			}
			loaded, err := load()
			if err != nil {
				return err
			}
			for _, w := range loaded.Warnings {
				fmt.Fprintln(cmd.ErrOrStderr(), "warning:", w)
			}
			file := "none (built-in defaults)"
			if loaded.ConfigFile != "" {
				file = loaded.ConfigFile + " (" + loaded.ConfigRule + ")"
			}
			header := "Configuration in effect: built-in defaults, then the config file, then ROOST_* variables.\n" +
				"Config file: " + file + "\n" +
				"Secrets (node.cookie, dashboard.default_password, backup.s3.secret_access_key) are not shown."
			fmt.Fprint(out, config.FormatEntries(header, loaded.Entries()))
			return nil
		},
	}
	show.Flags().BoolVar(&defaults, "defaults", false, "print the built-in defaults instead")
	cmd.AddCommand(show)
	return cmd
}
