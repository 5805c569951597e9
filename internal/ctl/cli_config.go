package ctl

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

// authnLine is the status line of a node's authentication setting.
func authnLine(a *AuthnStatus) string {
	if !a.Enabled {
		return "disabled (authn.enable = false): any client may connect"
	}
	s := "user_id_type " + a.UserIDType
	if a.Source == "cluster override" {
		s += fmt.Sprintf(" (cluster override; this node's config says %s; undo: roost ctl config unset authn.user_id_type)", a.NodeConfig)
	} else {
		s += " (this node's config)"
	}
	return s
}

// ListConfigOverrides returns the cluster config overrides.
func (c *Client) ListConfigOverrides(ctx context.Context) ([]ConfigOverride, error) {
	return listAll[ConfigOverride](ctx, c, "/api/v1/config/overrides")
}

// SetConfigOverride sets a cluster config override to a JSON value.
func (c *Client) SetConfigOverride(ctx context.Context, key string, value json.RawMessage) (*ConfigOverride, error) {
	return call[ConfigOverride](ctx, c, http.MethodPut, "/api/v1/config/overrides/"+PathEscape(key), map[string]json.RawMessage{"value": value})
}

// DeleteConfigOverride removes a cluster config override.
func (c *Client) DeleteConfigOverride(ctx context.Context, key string) error {
	return c.Do(ctx, http.MethodDelete, "/api/v1/config/overrides/"+PathEscape(key), nil, nil)
}

func (c *cli) configCmd() *cobra.Command {
	list := &cobra.Command{
		Use:   "overrides",
		Short: "List the cluster config overrides (one value for every node, before each node's config file)",
		RunE: c.run(func(ctx context.Context, cl *Client, out *printer, _ []string) error {
			ovs, err := cl.ListConfigOverrides(ctx)
			if err != nil {
				return err
			}
			return out.print(ovs, func(tw *tabwriter.Writer) {
				if len(ovs) == 0 {
					fmt.Fprintln(tw, "no cluster config overrides: every node follows its own config")
					return
				}
				row(tw, "KEY", "VALUE", "FOLLOWED", "UPDATED")
				for _, o := range ovs {
					row(tw, o.Key, string(o.Value), yesNo(o.Followed), timeCell(o.UpdatedAt))
				}
			})
		}),
	}
	set := &cobra.Command{
		Use:   "set KEY VALUE",
		Short: "Set a cluster config override, which every node follows at once (authn.user_id_type: username|clientid|both)",
		RunE: c.run(func(ctx context.Context, cl *Client, out *printer, args []string) error {
			// A JSON value as it is (3, true, "x"); a bare word is a string.
			v := json.RawMessage(args[1])
			if !json.Valid(v) {
				v = json.RawMessage(strconv.Quote(args[1]))
			}
			o, err := cl.SetConfigOverride(ctx, args[0], v)
			if err != nil {
				return err
			}
			return out.print(o, func(tw *tabwriter.Writer) {
				fmt.Fprintf(tw, "cluster config override %s = %s: every node follows it now (undo: roost ctl config unset %s)\n", o.Key, o.Value, o.Key)
			})
		}),
	}
	unset := &cobra.Command{
		Use:   "unset KEY",
		Short: "Remove a cluster config override: every node follows its own config for KEY again",
		RunE: c.run(func(ctx context.Context, cl *Client, out *printer, args []string) error {
			if err := cl.DeleteConfigOverride(ctx, args[0]); err != nil {
				return err
			}
			return out.done("removed the cluster config override %s: every node follows its own config for it again", args[0])
		}),
	}
	return groupCmd("config", "Cluster config overrides (the replicated config table)", list, set, unset)
}
