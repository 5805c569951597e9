package api

import (
	"fmt"
	"net/http"
	"regexp"
	"time"

	"github.com/roostmq/roost/internal/store"
)

// APIKeyInput is the body of POST /api/v1/api_keys.
type APIKeyInput struct {
	Name string `json:"name"`
	Desc string `json:"desc,omitempty"`
	// ExpiresAt is an RFC 3339 time or a duration from now ("720h").
	// Empty: never.
	ExpiresAt string `json:"expires_at,omitempty"`
	Enabled   *bool  `json:"enabled,omitempty"` // default true
}

// APIKeyUpdate is the body of PUT /api/v1/api_keys/{name}: the fields to
// change. ExpiresAt "never" removes the expiry.
type APIKeyUpdate struct {
	Desc      *string `json:"desc,omitempty"`
	Enabled   *bool   `json:"enabled,omitempty"`
	ExpiresAt *string `json:"expires_at,omitempty"`
}

// APIKey is a key as the API shows it: never its secret or hash.
type APIKey struct {
	Name      string    `json:"name"`
	Desc      string    `json:"desc,omitempty"`
	Enabled   bool      `json:"enabled"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	Expired   bool      `json:"expired"`
}

// APIKeyCreated answers a create: the only time the secret is shown.
type APIKeyCreated struct {
	APIKey
	Secret string `json:"secret"`
}

func apiKeyView(now time.Time) func(k *store.APIKey) APIKey {
	return func(k *store.APIKey) APIKey {
		return APIKey{Name: k.Name, Desc: k.Desc, Enabled: k.Enabled, CreatedAt: k.CreatedAt,
			ExpiresAt: k.ExpiresAt, Expired: !k.ExpiresAt.IsZero() && !now.Before(k.ExpiresAt)}
	}
}

// An API key name is the user name of HTTP basic auth: no ':'.
var apiKeyName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

func (s *Server) listAPIKeys(w http.ResponseWriter, r *http.Request) error {
	p, err := parsePage(r)
	if err != nil {
		return err
	}
	var out Page[APIKey]
	err = s.st.View(func(tx *store.Tx) (err error) {
		out, err = listTable(tx, store.TableAPIKeys, "", nil, p, apiKeyView(time.Now()))
		return err
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) createAPIKey(w http.ResponseWriter, r *http.Request) error {
	var in APIKeyInput
	if err := decode(w, r, maxBody, &in); err != nil {
		return err
	}
	if in.Name == "" {
		return fieldError("name", "required")
	}
	if !apiKeyName.MatchString(in.Name) {
		return fieldError("name", "must be 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit, got %q", in.Name)
	}
	now := time.Now().UTC()
	exp, err := parseUntil(in.ExpiresAt, now)
	if err != nil {
		return fieldError("expires_at", "%v", err)
	}
	if err := s.st.View(func(tx *store.Tx) error {
		if tx.Get(store.TableAPIKeys, in.Name) != nil {
			return conflict("API key %q already exists", in.Name)
		}
		return nil
	}); err != nil {
		return err
	}
	secret, salt, hash := newAPIKeySecret()
	k := store.APIKey{V: store.RecordVersion, Name: in.Name, SecretHash: hash, Salt: salt,
		Enabled: in.Enabled == nil || *in.Enabled, Desc: in.Desc, CreatedAt: now, ExpiresAt: exp}
	op, err := store.Put(store.TableAPIKeys, k.Name, k)
	if err != nil {
		return err
	}
	if _, err := s.st.Apply(r.Context(), op); err != nil {
		return fmt.Errorf("create API key %q: %w", k.Name, err)
	}
	writeJSON(w, http.StatusCreated, APIKeyCreated{APIKey: apiKeyView(now)(&k), Secret: secret})
	return nil
}

func (s *Server) loadAPIKey(r *http.Request) (store.APIKey, error) {
	name := r.PathValue("name")
	var (
		k  store.APIKey
		ok bool
	)
	err := s.st.View(func(tx *store.Tx) (err error) {
		k, ok, err = store.Get[store.APIKey](tx, store.TableAPIKeys, name)
		return err
	})
	if err == nil && !ok {
		err = notFound("no API key %q", name)
	}
	return k, err
}

func (s *Server) getAPIKey(w http.ResponseWriter, r *http.Request) error {
	k, err := s.loadAPIKey(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, apiKeyView(time.Now())(&k))
	return nil
}

func (s *Server) updateAPIKey(w http.ResponseWriter, r *http.Request) error {
	var in APIKeyUpdate
	if err := decode(w, r, maxBody, &in); err != nil {
		return err
	}
	if in.Desc == nil && in.Enabled == nil && in.ExpiresAt == nil {
		return badRequest("request body: nothing to change (give \"desc\", \"enabled\" and/or \"expires_at\")")
	}
	now := time.Now().UTC()
	var exp time.Time
	if in.ExpiresAt != nil && *in.ExpiresAt != "never" {
		var err error
		if exp, err = parseUntil(*in.ExpiresAt, now); err != nil {
			return fieldError("expires_at", "%v (or \"never\")", err)
		}
	}
	k, err := s.loadAPIKey(r)
	if err != nil {
		return err
	}
	if in.Desc != nil {
		k.Desc = *in.Desc
	}
	if in.Enabled != nil {
		k.Enabled = *in.Enabled
	}
	if in.ExpiresAt != nil {
		k.ExpiresAt = exp
	}
	k.V = store.RecordVersion
	op, err := store.Put(store.TableAPIKeys, k.Name, k)
	if err != nil {
		return err
	}
	if _, err := s.st.Apply(r.Context(), op); err != nil {
		return fmt.Errorf("update API key %q: %w", k.Name, err)
	}
	writeJSON(w, http.StatusOK, apiKeyView(now)(&k))
	return nil
}

func (s *Server) deleteAPIKey(w http.ResponseWriter, r *http.Request) error {
	k, err := s.loadAPIKey(r)
	if err != nil {
		return err
	}
	if _, err := s.st.Apply(r.Context(), store.Delete(store.TableAPIKeys, k.Name)); err != nil {
		return fmt.Errorf("delete API key %q: %w", k.Name, err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
