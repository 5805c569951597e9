package api

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/roostmq/roost/internal/store"
)

// BanInput is the body of POST /api/v1/banned.
type BanInput struct {
	Kind   string `json:"kind"`  // clientid | username | peerhost
	Value  string `json:"value"` // peerhost: an IP address or a CIDR block
	Reason string `json:"reason,omitempty"`
	// Until is when the ban ends: an RFC 3339 time or a duration from now
	// ("1h", "30m"). Empty: never.
	Until string `json:"until,omitempty"`
}

// Ban is a stored ban; Expired bans no longer refuse anyone and are
// cleaned up by the broker.
type Ban struct {
	Kind    string    `json:"kind"`
	Value   string    `json:"value"`
	Reason  string    `json:"reason,omitempty"`
	By      string    `json:"by,omitempty"`
	At      time.Time `json:"at"`
	Until   time.Time `json:"until,omitzero"`
	Expired bool      `json:"expired"`
}

func banView(now time.Time) func(b *store.Ban) Ban {
	return func(b *store.Ban) Ban {
		return Ban{Kind: b.Kind, Value: b.Value, Reason: b.Reason, By: b.By, At: b.At, Until: b.Until, Expired: b.Expired(now)}
	}
}

func banKinds() []string {
	return []string{store.KindClientID, store.KindUsername, store.KindPeerhost}
}

// canonicalPeerhost returns the one spelling of an IP address or CIDR
// block under which its ban is stored, so "10.1.2.3/8" and "10.0.0.0/8"
// are the same ban.
func canonicalPeerhost(v string) (string, error) {
	if strings.Contains(v, "/") {
		p, err := netip.ParsePrefix(v)
		if err != nil {
			return "", fmt.Errorf("not a CIDR block: %q", v)
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
			if p.Bits() < 0 {
				return "", fmt.Errorf("not a CIDR block: %q (an IPv4-mapped prefix shorter than /96)", v)
			}
		}
		return p.Masked().String(), nil
	}
	a, err := netip.ParseAddr(v)
	if err != nil {
		return "", fmt.Errorf("not an IP address or CIDR block: %q", v)
	}
	if a.Zone() != "" {
		return "", fmt.Errorf("an IP address with a zone (%q) cannot be banned", v)
	}
	return a.Unmap().String(), nil
}

// parseUntil reads an expiry as an RFC 3339 time or a duration from now.
func parseUntil(v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		if !t.After(now) {
			return time.Time{}, fmt.Errorf("%s is in the past", v)
		}
		return t.UTC(), nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return time.Time{}, fmt.Errorf("expected an RFC 3339 time (2030-01-02T15:04:05Z) or a duration (1h, 30m), got %q", v)
	}
	if d <= 0 {
		return time.Time{}, fmt.Errorf("duration %q is not positive", v)
	}
	return now.Add(d).UTC().Truncate(time.Second), nil
}

func (s *Server) listBans(w http.ResponseWriter, r *http.Request) error {
	p, err := parsePage(r)
	if err != nil {
		return err
	}
	prefix := ""
	if k := r.URL.Query().Get("kind"); k != "" {
		if err := requireKind("kind", k, banKinds()...); err != nil {
			return badRequest("query parameter \"kind\": must be one of %s, got %q", strings.Join(banKinds(), ", "), k)
		}
		prefix = k + ":"
	}
	var out Page[Ban]
	err = s.st.View(func(tx *store.Tx) (err error) {
		out, err = listTable(tx, store.TableBanned, prefix, nil, p, banView(time.Now()))
		return err
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) createBan(w http.ResponseWriter, r *http.Request) error {
	var in BanInput
	if err := decode(w, r, maxBody, &in); err != nil {
		return err
	}
	if err := requireKind("kind", in.Kind, banKinds()...); err != nil {
		return err
	}
	if err := validID("value", in.Value); err != nil {
		return err
	}
	if in.Kind == store.KindPeerhost {
		v, err := canonicalPeerhost(in.Value)
		if err != nil {
			return fieldError("value", "%v", err)
		}
		in.Value = v
	}
	now := time.Now().UTC()
	until, err := parseUntil(in.Until, now)
	if err != nil {
		return fieldError("until", "%v", err)
	}
	key := store.BanKey(in.Kind, in.Value)
	if err := s.st.View(func(tx *store.Tx) error {
		old, ok, err := store.Get[store.Ban](tx, store.TableBanned, key)
		if err != nil {
			return err
		}
		if ok && !old.Expired(now) { // an expired ban may be replaced
			return conflict("%s is already banned", key)
		}
		return nil
	}); err != nil {
		return err
	}
	b := store.Ban{V: store.RecordVersion, Kind: in.Kind, Value: in.Value, Reason: in.Reason,
		By: callerName(r), At: now, Until: until}
	op, err := store.Put(store.TableBanned, key, b)
	if err != nil {
		return err
	}
	if _, err := s.st.Apply(r.Context(), op); err != nil {
		return fmt.Errorf("ban %s: %w", key, err)
	}
	writeJSON(w, http.StatusCreated, banView(now)(&b))
	return nil
}

func (s *Server) banKeyOf(r *http.Request) (string, error) {
	kind, value := r.PathValue("kind"), r.PathValue("value")
	if requireKind("kind", kind, banKinds()...) != nil {
		return "", notFound("no ban kind %q (one of %s)", kind, strings.Join(banKinds(), ", "))
	}
	if kind == store.KindPeerhost {
		v, err := canonicalPeerhost(value)
		if err != nil {
			return "", notFound("no ban of peerhost %q: %v", value, err)
		}
		value = v
	}
	return store.BanKey(kind, value), nil
}

func (s *Server) loadBan(r *http.Request) (store.Ban, string, error) {
	key, err := s.banKeyOf(r)
	if err != nil {
		return store.Ban{}, "", err
	}
	var (
		b  store.Ban
		ok bool
	)
	err = s.st.View(func(tx *store.Tx) (err error) {
		b, ok, err = store.Get[store.Ban](tx, store.TableBanned, key)
		return err
	})
	if err == nil && !ok {
		err = notFound("no ban %s", key)
	}
	return b, key, err
}

func (s *Server) getBan(w http.ResponseWriter, r *http.Request) error {
	b, _, err := s.loadBan(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, banView(time.Now())(&b))
	return nil
}

func (s *Server) deleteBan(w http.ResponseWriter, r *http.Request) error {
	_, key, err := s.loadBan(r)
	if err != nil {
		return err
	}
	if _, err := s.st.Apply(r.Context(), store.Delete(store.TableBanned, key)); err != nil {
		return fmt.Errorf("unban %s: %w", key, err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
