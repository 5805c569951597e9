package main

import (
	"github.com/roostmq/roost/internal/ctl"
	"github.com/spf13/cobra"
)

// newCtlCmd is `roost ctl …`: management of a running node over the unix
// socket in the data dir that resolve finds, or of a remote node with
// --host and an API key. The commands live in internal/ctl (tested there
// against a real API server).
func newCtlCmd(resolve func() (dataDir string, err error)) *cobra.Command {
	return ctl.NewCommand(resolve)
}
