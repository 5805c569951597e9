package ctl

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
)

// Status returns the node's status.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	return call[Status](ctx, c, http.MethodGet, "/api/v1/status", nil)
}

// Metrics returns the node's broker counters.
func (c *Client) Metrics(ctx context.Context) (*Metrics, error) {
	return call[Metrics](ctx, c, http.MethodGet, "/api/v1/metrics", nil)
}

// Digest returns the per-table digest of the replicated data.
func (c *Client) Digest(ctx context.Context) (*Digest, error) {
	return call[Digest](ctx, c, http.MethodGet, "/api/v1/data/digest", nil)
}

// userPath is the path of one user; an empty kind means the node's
// default (authn.user_id_type).
func userPath(kind, id string) string {
	if kind == "" {
		return "/api/v1/users/" + PathEscape(id)
	}
	return "/api/v1/users/" + PathEscape(kind) + "/" + PathEscape(id)
}

// ListUsers returns every user, of one kind when kind is not empty.
func (c *Client) ListUsers(ctx context.Context, kind string) ([]User, error) {
	path := "/api/v1/users"
	if kind != "" {
		path += "?kind=" + url.QueryEscape(kind)
	}
	return listAll[User](ctx, c, path)
}

// AddUser creates a user.
func (c *Client) AddUser(ctx context.Context, in UserInput) (*User, error) {
	return call[User](ctx, c, http.MethodPost, "/api/v1/users", in)
}

// AddUsers creates many users in one commit (all or none).
func (c *Client) AddUsers(ctx context.Context, in []UserInput) ([]User, error) {
	out, err := call[struct{ Data []User }](ctx, c, http.MethodPost, "/api/v1/users/bulk", in)
	if err != nil {
		return nil, err
	}
	return out.Data, nil
}

// UpdateUser changes a user's password and/or superuser flag.
func (c *Client) UpdateUser(ctx context.Context, kind, id string, up UserUpdate) (*User, error) {
	return call[User](ctx, c, http.MethodPut, userPath(kind, id), up)
}

// DeleteUser deletes a user.
func (c *Client) DeleteUser(ctx context.Context, kind, id string) error {
	return c.Do(ctx, http.MethodDelete, userPath(kind, id), nil, nil)
}

// ListACL returns every ACL rule in evaluation order.
func (c *Client) ListACL(ctx context.Context) ([]ACLRule, error) {
	return listAll[ACLRule](ctx, c, "/api/v1/acl")
}

// AddACL appends a rule and returns it with its id.
func (c *Client) AddACL(ctx context.Context, in ACLInput) (*ACLRule, error) {
	return call[ACLRule](ctx, c, http.MethodPost, "/api/v1/acl", in)
}

// AddACLs appends rules in order in one commit (all or none).
func (c *Client) AddACLs(ctx context.Context, in []ACLInput) ([]ACLRule, error) {
	out, err := call[struct{ Data []ACLRule }](ctx, c, http.MethodPost, "/api/v1/acl/bulk", in)
	if err != nil {
		return nil, err
	}
	return out.Data, nil
}

// DeleteACL deletes the rule with the id.
func (c *Client) DeleteACL(ctx context.Context, id uint64) error {
	return c.Do(ctx, http.MethodDelete, fmt.Sprintf("/api/v1/acl/%d", id), nil, nil)
}

// ListBans returns every ban, expired ones included.
func (c *Client) ListBans(ctx context.Context) ([]Ban, error) {
	return listAll[Ban](ctx, c, "/api/v1/banned")
}

// AddBan bans a client id, username or peer address.
func (c *Client) AddBan(ctx context.Context, in BanInput) (*Ban, error) {
	return call[Ban](ctx, c, http.MethodPost, "/api/v1/banned", in)
}

// DeleteBan lifts a ban.
func (c *Client) DeleteBan(ctx context.Context, kind, value string) error {
	return c.Do(ctx, http.MethodDelete, "/api/v1/banned/"+PathEscape(kind)+"/"+PathEscape(value), nil, nil)
}

// ListRetained returns the retained messages whose topic matches filter
// (all when empty), without payloads.
func (c *Client) ListRetained(ctx context.Context, filter string) ([]RetainedSummary, error) {
	path := "/api/v1/retained"
	if filter != "" {
		path += "?topic=" + url.QueryEscape(filter)
	}
	return listAll[RetainedSummary](ctx, c, path)
}

// DeleteRetained deletes the retained message on topic.
func (c *Client) DeleteRetained(ctx context.Context, topic string) error {
	return c.Do(ctx, http.MethodDelete, "/api/v1/retained/"+PathEscape(topic), nil, nil)
}

// ListAPIKeys returns every API key (without secrets).
func (c *Client) ListAPIKeys(ctx context.Context) ([]APIKey, error) {
	return listAll[APIKey](ctx, c, "/api/v1/api_keys")
}

// CreateAPIKey creates a key and returns its secret, shown only now.
func (c *Client) CreateAPIKey(ctx context.Context, in APIKeyInput) (*APIKeyCreated, error) {
	return call[APIKeyCreated](ctx, c, http.MethodPost, "/api/v1/api_keys", in)
}

// SetAPIKeyEnabled enables or disables a key.
func (c *Client) SetAPIKeyEnabled(ctx context.Context, name string, enabled bool) (*APIKey, error) {
	return call[APIKey](ctx, c, http.MethodPut, "/api/v1/api_keys/"+PathEscape(name), map[string]bool{"enabled": enabled})
}

// DeleteAPIKey deletes a key.
func (c *Client) DeleteAPIKey(ctx context.Context, name string) error {
	return c.Do(ctx, http.MethodDelete, "/api/v1/api_keys/"+PathEscape(name), nil, nil)
}

// call sends a request and decodes the JSON answer into a new T.
func call[T any](ctx context.Context, c *Client, method, path string, in any) (*T, error) {
	var out T
	if err := c.Do(ctx, method, path, in, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
