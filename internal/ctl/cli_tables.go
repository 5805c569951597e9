package ctl

import (
	"context"
	"fmt"
	"strconv"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

func groupCmd(use, short string, sub ...*cobra.Command) *cobra.Command {
	cmd := &cobra.Command{Use: use, Short: short,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() }}
	cmd.AddCommand(sub...)
	return cmd
}

func oneOf(flag, v string, allowed ...string) error {
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return fmt.Errorf("--%s %q: want one of %v", flag, v, allowed)
}

// ---- users ----

func usersTable(users []User) func(*tabwriter.Writer) {
	return func(tw *tabwriter.Writer) {
		row(tw, "KIND", "USER", "SUPERUSER", "ALGORITHM", "CREATED")
		for _, u := range users {
			row(tw, u.Kind, u.UserID, yesNo(u.IsSuperuser), u.Algorithm, timeCell(u.CreatedAt))
		}
	}
}

// kindFlags adds --clientid and --username to a user command; neither
// means the node's default kind (authn.user_id_type).
func kindFlags(cmd *cobra.Command, clientID, username *bool) {
	cmd.Flags().BoolVar(clientID, "clientid", false, "the user is a client id")
	cmd.Flags().BoolVar(username, "username", false, "the user is a username")
	cmd.MarkFlagsMutuallyExclusive("clientid", "username")
}

func userKind(clientID, username bool) string {
	switch {
	case clientID:
		return "clientid"
	case username:
		return "username"
	}
	return "" // the node's authn.user_id_type
}

func (c *cli) usersCmd() *cobra.Command {
	var addSuper, addCID, addUser, delCID, delUser, pwCID, pwUser bool
	add := &cobra.Command{
		Use:   "add USER PASSWORD",
		Short: "Add an MQTT user (by username, or by client id with --clientid)",
		RunE: c.run(func(ctx context.Context, cl *Client, out *printer, args []string) error {
			u, err := cl.AddUser(ctx, UserInput{UserID: args[0], Password: args[1], IsSuperuser: addSuper, Kind: userKind(addCID, addUser)})
			if err != nil {
				return err
			}
			return out.print(u, usersTable([]User{*u}))
		}),
	}
	add.Flags().BoolVar(&addSuper, "superuser", false, "the user bypasses ACL rules")
	kindFlags(add, &addCID, &addUser)

	list := &cobra.Command{
		Use:   "list",
		Short: "List MQTT users",
		RunE: c.run(func(ctx context.Context, cl *Client, out *printer, _ []string) error {
			users, err := cl.ListUsers(ctx, "")
			if err != nil {
				return err
			}
			return out.print(users, usersTable(users))
		}),
	}

	del := &cobra.Command{
		Use:   "del USER",
		Short: "Delete an MQTT user",
		RunE: c.run(func(ctx context.Context, cl *Client, out *printer, args []string) error {
			if err := cl.DeleteUser(ctx, userKind(delCID, delUser), args[0]); err != nil {
				return err
			}
			return out.done("deleted user %s", args[0])
		}),
	}
	kindFlags(del, &delCID, &delUser)

	passwd := &cobra.Command{
		Use:   "passwd USER PASSWORD",
		Short: "Change an MQTT user's password",
		RunE: c.run(func(ctx context.Context, cl *Client, out *printer, args []string) error {
			u, err := cl.UpdateUser(ctx, userKind(pwCID, pwUser), args[0], UserUpdate{Password: &args[1]})
			if err != nil {
				return err
			}
			return out.print(u, func(tw *tabwriter.Writer) {
				fmt.Fprintf(tw, "changed the password of %s %s\n", u.Kind, cell(u.UserID))
			})
		}),
	}
	kindFlags(passwd, &pwCID, &pwUser)

	return groupCmd("users", "MQTT users of the built-in authentication database", add, list, del, passwd)
}

// ---- acl ----

func aclTable(rules []ACLRule) func(*tabwriter.Writer) {
	return func(tw *tabwriter.Writer) {
		row(tw, "ID", "KIND", "VALUE", "TOPIC", "ACTION", "PERMISSION")
		for _, r := range rules {
			row(tw, fmt.Sprint(r.ID), r.Kind, r.Value, r.Topic, r.Action, r.Permission)
		}
	}
}

func (c *cli) aclCmd() *cobra.Command {
	var in ACLInput
	var username, clientID string
	var all bool
	add := &cobra.Command{
		Use:   "add (--username U | --clientid C | --all) --topic T --action publish|subscribe|all --permission allow|deny",
		Short: "Append an ACL rule (rules are evaluated in order; the first match decides)",
		RunE: c.run(func(ctx context.Context, cl *Client, out *printer, _ []string) error {
			switch {
			case username != "":
				in.Kind, in.Value = "username", username
			case clientID != "":
				in.Kind, in.Value = "clientid", clientID
			case all:
				in.Kind = "all"
			default:
				return fmt.Errorf("one of --username, --clientid or --all is required")
			}
			if err := oneOf("action", in.Action, "publish", "subscribe", "all"); err != nil {
				return err
			}
			if err := oneOf("permission", in.Permission, "allow", "deny"); err != nil {
				return err
			}
			r, err := cl.AddACL(ctx, in)
			if err != nil {
				return err
			}
			return out.print(r, aclTable([]ACLRule{*r}))
		}),
	}
	f := add.Flags()
	f.StringVar(&username, "username", "", "the rule applies to this username")
	f.StringVar(&clientID, "clientid", "", "the rule applies to this client id")
	f.BoolVar(&all, "all", false, "the rule applies to every client")
	f.StringVar(&in.Topic, "topic", "", "topic filter (+, #, ${username}, ${clientid}); \"eq T\" matches T literally")
	f.StringVar(&in.Action, "action", "", "publish, subscribe or all")
	f.StringVar(&in.Permission, "permission", "", "allow or deny")
	add.MarkFlagsMutuallyExclusive("username", "clientid", "all")
	add.MarkFlagsOneRequired("username", "clientid", "all")
	for _, name := range []string{"topic", "action", "permission"} {
		_ = add.MarkFlagRequired(name)
	}

	list := &cobra.Command{
		Use:   "list",
		Short: "List ACL rules in evaluation order",
		RunE: c.run(func(ctx context.Context, cl *Client, out *printer, _ []string) error {
			rules, err := cl.ListACL(ctx)
			if err != nil {
				return err
			}
			return out.print(rules, aclTable(rules))
		}),
	}

	del := &cobra.Command{
		Use:   "del ID",
		Short: "Delete the ACL rule with this id (see acl list)",
		RunE: c.run(func(ctx context.Context, cl *Client, out *printer, args []string) error {
			id, err := strconv.ParseUint(args[0], 10, 64)
			if err != nil || id == 0 {
				return fmt.Errorf("rule id %q: want a positive integer (see acl list)", args[0])
			}
			if err := cl.DeleteACL(ctx, id); err != nil {
				return err
			}
			return out.done("deleted ACL rule %d", id)
		}),
	}
	return groupCmd("acl", "Authorization rules of the built-in database", add, list, del)
}

// ---- banned ----

func bansTable(bans []Ban) func(*tabwriter.Writer) {
	return func(tw *tabwriter.Writer) {
		row(tw, "KIND", "VALUE", "REASON", "BY", "AT", "UNTIL")
		for _, b := range bans {
			until := "never"
			if !b.Until.IsZero() {
				until = timeCell(b.Until)
			}
			if b.Expired {
				until += " (expired)"
			}
			row(tw, b.Kind, b.Value, b.Reason, b.By, timeCell(b.At), until)
		}
	}
}

func (c *cli) bannedCmd() *cobra.Command {
	var in BanInput
	var clientID, username, peerhost string
	add := &cobra.Command{
		Use:   "add (--clientid C | --username U | --peerhost IP_OR_CIDR) [--reason R] [--until RFC3339|DURATION]",
		Short: "Ban a client id, a username or a peer address (refused at CONNECT)",
		RunE: c.run(func(ctx context.Context, cl *Client, out *printer, _ []string) error {
			switch {
			case clientID != "":
				in.Kind, in.Value = "clientid", clientID
			case username != "":
				in.Kind, in.Value = "username", username
			case peerhost != "":
				in.Kind, in.Value = "peerhost", peerhost
			default:
				return fmt.Errorf("one of --clientid, --username or --peerhost is required")
			}
			b, err := cl.AddBan(ctx, in)
			if err != nil {
				return err
			}
			return out.print(b, bansTable([]Ban{*b}))
		}),
	}
	f := add.Flags()
	f.StringVar(&clientID, "clientid", "", "ban this client id")
	f.StringVar(&username, "username", "", "ban this username")
	f.StringVar(&peerhost, "peerhost", "", "ban this IP address or CIDR block")
	f.StringVar(&in.Reason, "reason", "", "why (shown in banned list)")
	f.StringVar(&in.Until, "until", "", "when the ban ends: an RFC 3339 time or a duration such as 1h (default: never)")
	add.MarkFlagsMutuallyExclusive("clientid", "username", "peerhost")
	add.MarkFlagsOneRequired("clientid", "username", "peerhost")

	list := &cobra.Command{
		Use:   "list",
		Short: "List bans (expired ones until they are cleaned up)",
		RunE: c.run(func(ctx context.Context, cl *Client, out *printer, _ []string) error {
			bans, err := cl.ListBans(ctx)
			if err != nil {
				return err
			}
			return out.print(bans, bansTable(bans))
		}),
	}

	del := &cobra.Command{
		Use:   "del KIND VALUE",
		Short: "Lift a ban (KIND: clientid, username or peerhost)",
		RunE: c.run(func(ctx context.Context, cl *Client, out *printer, args []string) error {
			if oneOf("kind", args[0], "clientid", "username", "peerhost") != nil {
				return fmt.Errorf("ban kind %q: want clientid, username or peerhost", args[0])
			}
			if err := cl.DeleteBan(ctx, args[0], args[1]); err != nil {
				return err
			}
			return out.done("lifted the ban of %s %s", args[0], args[1])
		}),
	}
	return groupCmd("banned", "Banned client ids, usernames and peer addresses", add, list, del)
}

// ---- retained ----

func (c *cli) retainedCmd() *cobra.Command {
	var filter string
	list := &cobra.Command{
		Use:   "list [--topic FILTER]",
		Short: "List retained messages (those matching a topic filter with --topic)",
		RunE: c.run(func(ctx context.Context, cl *Client, out *printer, _ []string) error {
			msgs, err := cl.ListRetained(ctx, filter)
			if err != nil {
				return err
			}
			return out.print(msgs, func(tw *tabwriter.Writer) {
				row(tw, "TOPIC", "QOS", "SIZE", "FROM", "CREATED")
				for _, m := range msgs {
					created := timeCell(m.Created)
					if m.Expired {
						created += " (expired)"
					}
					row(tw, m.Topic, fmt.Sprint(m.QoS), fmt.Sprint(m.PayloadSize), m.From, created)
				}
			})
		}),
	}
	list.Flags().StringVar(&filter, "topic", "", "only messages whose topic matches this filter (+ and # allowed)")

	del := &cobra.Command{
		Use:   "del TOPIC",
		Short: "Delete the retained message on TOPIC",
		RunE: c.run(func(ctx context.Context, cl *Client, out *printer, args []string) error {
			if err := cl.DeleteRetained(ctx, args[0]); err != nil {
				return err
			}
			return out.done("deleted the retained message on %s", args[0])
		}),
	}
	return groupCmd("retained", "Retained messages", list, del)
}

// ---- apikeys ----

func apiKeysTable(keys []APIKey) func(*tabwriter.Writer) {
	return func(tw *tabwriter.Writer) {
		row(tw, "NAME", "ENABLED", "EXPIRES", "CREATED", "DESC")
		for _, k := range keys {
			exp := "never"
			if !k.ExpiresAt.IsZero() {
				exp = timeCell(k.ExpiresAt)
			}
			if k.Expired {
				exp += " (expired)"
			}
			row(tw, k.Name, yesNo(k.Enabled), exp, timeCell(k.CreatedAt), k.Desc)
		}
	}
}

func (c *cli) apikeysCmd() *cobra.Command {
	var in APIKeyInput
	create := &cobra.Command{
		Use:   "create NAME",
		Short: "Create an API key for the REST API; its secret is shown only now",
		RunE: c.run(func(ctx context.Context, cl *Client, out *printer, args []string) error {
			in.Name = args[0]
			k, err := cl.CreateAPIKey(ctx, in)
			if err != nil {
				return err
			}
			return out.print(k, func(tw *tabwriter.Writer) {
				row(tw, "name:", k.Name)
				row(tw, "secret:", k.Secret)
				fmt.Fprintf(tw, "\nThe secret is shown only now: keep it safe. Use it as\n  --api-key %s:%s  or  %s=%s:%s\n",
					k.Name, k.Secret, APIKeyEnv, k.Name, k.Secret)
			})
		}),
	}
	create.Flags().StringVar(&in.Desc, "desc", "", "what the key is for")
	create.Flags().StringVar(&in.ExpiresAt, "expires", "", "when the key stops working: an RFC 3339 time or a duration such as 720h (default: never)")

	list := &cobra.Command{
		Use:   "list",
		Short: "List API keys (never their secrets)",
		RunE: c.run(func(ctx context.Context, cl *Client, out *printer, _ []string) error {
			keys, err := cl.ListAPIKeys(ctx)
			if err != nil {
				return err
			}
			return out.print(keys, apiKeysTable(keys))
		}),
	}

	del := &cobra.Command{
		Use:   "del NAME",
		Short: "Delete an API key",
		RunE: c.run(func(ctx context.Context, cl *Client, out *printer, args []string) error {
			if err := cl.DeleteAPIKey(ctx, args[0]); err != nil {
				return err
			}
			return out.done("deleted API key %s", args[0])
		}),
	}

	enable := func(use, short string, on bool) *cobra.Command {
		return &cobra.Command{
			Use:   use + " NAME",
			Short: short,
			RunE: c.run(func(ctx context.Context, cl *Client, out *printer, args []string) error {
				k, err := cl.SetAPIKeyEnabled(ctx, args[0], on)
				if err != nil {
					return err
				}
				return out.print(k, apiKeysTable([]APIKey{*k}))
			}),
		}
	}
	return groupCmd("apikeys", "API keys for the REST API (HTTP basic auth NAME:SECRET)", create, list, del,
		enable("enable", "Enable an API key", true), enable("disable", "Disable an API key (requests with it get 401)", false))
}
