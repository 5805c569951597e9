package ctl

import (
	"context"
	"fmt"
	"net/http"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

// ClusterMember mirrors cluster.MemberStatus (ctl does not import the
// server-side packages).
type ClusterMember struct {
	Name         string `json:"name"`
	NodeID       string `json:"node_id"`
	Address      string `json:"address"`
	Role         string `json:"role"`
	Healthy      bool   `json:"healthy"`
	LastContact  string `json:"last_contact"`
	AppliedIndex uint64 `json:"applied_index"`
	Version      string `json:"version,omitempty"`
	Error        string `json:"error,omitempty"`
}

type clusterStatus struct {
	Nodes []ClusterMember `json:"nodes"`
}

func (c *cli) clusterCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Cluster membership: status, join, leave, force-leave",
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	printMembers := func(out *printer, st clusterStatus) error {
		return out.print(st, func(tw *tabwriter.Writer) {
			row(tw, "NAME", "NODE ID", "ADDRESS", "ROLE", "HEALTHY", "LAST CONTACT", "APPLIED", "ERROR")
			for _, m := range st.Nodes {
				row(tw, m.Name, m.NodeID, m.Address, m.Role, yesNo(m.Healthy), m.LastContact, fmt.Sprint(m.AppliedIndex), m.Error)
			}
		})
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "status",
		Short: "List the members with name, address, raft role, last contact with the leader and health",
		RunE: c.run(func(ctx context.Context, cl *Client, out *printer, _ []string) error {
			var st clusterStatus
			if err := cl.Do(ctx, http.MethodGet, "/api/v1/cluster", nil, &st); err != nil {
				return err
			}
			return printMembers(out, st)
		}),
	}, &cobra.Command{
		Use:   "join HOST:PORT",
		Short: "Add this node to the cluster of the member at HOST:PORT (its cluster.bind address); this node must hold no data",
		RunE: c.run(func(ctx context.Context, cl *Client, out *printer, args []string) error {
			var st clusterStatus
			if err := cl.Do(ctx, http.MethodPost, "/api/v1/cluster/join", map[string]string{"address": args[0]}, &st); err != nil {
				return err
			}
			return printMembers(out, st)
		}),
	}, &cobra.Command{
		Use:   "leave",
		Short: "Remove this node from its cluster; it starts over as an empty single-node cluster",
		RunE: c.run(func(ctx context.Context, cl *Client, out *printer, _ []string) error {
			if err := cl.Do(ctx, http.MethodPost, "/api/v1/cluster/leave", struct{}{}, nil); err != nil {
				return err
			}
			return out.done("left the cluster")
		}),
	}, &cobra.Command{
		Use:   "force-leave NODE",
		Short: "Remove a dead member (by name, node id or address) without its help",
		RunE: c.run(func(ctx context.Context, cl *Client, out *printer, args []string) error {
			if err := cl.Do(ctx, http.MethodPost, "/api/v1/cluster/force-leave", map[string]string{"node": args[0]}, nil); err != nil {
				return err
			}
			return out.done("removed %s from the cluster", args[0])
		}),
	})
	return cmd
}
