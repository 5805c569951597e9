package api

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/roostmq/roost/internal/broker"
	"github.com/roostmq/roost/internal/store"
)

// ACLInput is the body of POST /api/v1/acl (and one element of a bulk
// create). Rules are evaluated in the order they were created.
type ACLInput struct {
	Kind       string `json:"kind"`            // username | clientid | all
	Value      string `json:"value,omitempty"` // the username or client id; empty for all
	Topic      string `json:"topic"`           // filter, "eq TOPIC", ${username} / ${clientid}
	Action     string `json:"action"`          // publish | subscribe | all
	Permission string `json:"permission"`      // allow | deny
}

// ACLRule is a stored rule; ID is its place in the evaluation order.
type ACLRule struct {
	ID         uint64    `json:"id"`
	Kind       string    `json:"kind"`
	Value      string    `json:"value,omitempty"`
	Topic      string    `json:"topic"`
	Action     string    `json:"action"`
	Permission string    `json:"permission"`
	CreatedAt  time.Time `json:"created_at"`
}

func aclView(a *store.ACLRule) ACLRule {
	return ACLRule{ID: a.ID, Kind: a.Kind, Value: a.Value, Topic: a.Topic, Action: a.Action,
		Permission: a.Permission, CreatedAt: a.CreatedAt}
}

func checkACLInput(in *ACLInput, item string) error {
	if err := requireKind(item+"kind", in.Kind, store.KindUsername, store.KindClientID, store.KindAll); err != nil {
		return err
	}
	if in.Kind == store.KindAll {
		if in.Value != "" {
			return fieldError(item+"value", "must be empty for kind all")
		}
	} else if err := validID(item+"value", in.Value); err != nil {
		return err
	}
	if err := broker.ValidACLTopic(in.Topic); err != nil {
		return fieldError(item+"topic", "%v", err)
	}
	if err := requireKind(item+"action", in.Action, "publish", "subscribe", "all"); err != nil {
		return err
	}
	return requireKind(item+"permission", in.Permission, "allow", "deny")
}

func aclRecord(in *ACLInput) store.ACLRule {
	return store.ACLRule{V: store.RecordVersion, Kind: in.Kind, Value: in.Value, Topic: in.Topic,
		Action: in.Action, Permission: in.Permission, CreatedAt: time.Now().UTC()}
}

func (s *Server) listACL(w http.ResponseWriter, r *http.Request) error {
	p, err := parsePage(r)
	if err != nil {
		return err
	}
	var out Page[ACLRule]
	err = s.st.View(func(tx *store.Tx) (err error) {
		out, err = listTable(tx, store.TableACL, "", nil, p, aclView)
		return err
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// appendRules commits rules in one store entry, in order, and returns
// them as stored (with the ids the store gave them).
func (s *Server) appendRules(r *http.Request, in []ACLInput) ([]ACLRule, error) {
	ops := make([]store.Op, len(in))
	recs := make([]store.ACLRule, len(in))
	for i := range in {
		recs[i] = aclRecord(&in[i])
		op, err := store.Append(store.TableACL, recs[i])
		if err != nil {
			return nil, err
		}
		ops[i] = op
	}
	res, err := s.st.Apply(r.Context(), ops...)
	if err != nil {
		return nil, fmt.Errorf("add %d ACL rules: %w", len(ops), err)
	}
	if len(res.Keys) != len(ops) {
		return nil, fmt.Errorf("add ACL rules: the store returned %d keys for %d rules", len(res.Keys), len(ops))
	}
	out := make([]ACLRule, len(in))
	for i, key := range res.Keys {
		id, err := strconv.ParseUint(key, 16, 64)
		if err != nil {
			return nil, fmt.Errorf("add ACL rules: unexpected rule key %q: %w", key, err)
		}
		recs[i].ID = id
		out[i] = aclView(&recs[i])
	}
	return out, nil
}

func (s *Server) createACL(w http.ResponseWriter, r *http.Request) error {
	var in ACLInput
	if err := decode(w, r, maxBody, &in); err != nil {
		return err
	}
	if err := checkACLInput(&in, ""); err != nil {
		return err
	}
	out, err := s.appendRules(r, []ACLInput{in})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, out[0])
	return nil
}

// createACLBulk appends many rules, in the given order, in one store
// commit: all or none.
func (s *Server) createACLBulk(w http.ResponseWriter, r *http.Request) error {
	in, err := decodeBulk[ACLInput](w, r)
	if err != nil {
		return err
	}
	for i := range in {
		if err := checkACLInput(&in[i], fmt.Sprintf("[%d].", i)); err != nil {
			return err
		}
	}
	out, err := s.appendRules(r, in)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, map[string]any{"data": out})
	return nil
}

func (s *Server) aclIDOf(r *http.Request) (string, error) {
	v := r.PathValue("id")
	id, err := strconv.ParseUint(v, 10, 64)
	if err != nil || id == 0 {
		return "", notFound("no ACL rule %q (rule ids are positive integers)", v)
	}
	return store.ACLKey(id), nil
}

func (s *Server) loadACL(r *http.Request) (store.ACLRule, string, error) {
	key, err := s.aclIDOf(r)
	if err != nil {
		return store.ACLRule{}, "", err
	}
	var (
		a  store.ACLRule
		ok bool
	)
	err = s.st.View(func(tx *store.Tx) (err error) {
		a, ok, err = store.Get[store.ACLRule](tx, store.TableACL, key)
		return err
	})
	if err == nil && !ok {
		err = notFound("no ACL rule %s", r.PathValue("id"))
	}
	return a, key, err
}

func (s *Server) getACL(w http.ResponseWriter, r *http.Request) error {
	a, _, err := s.loadACL(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, aclView(&a))
	return nil
}

func (s *Server) deleteACL(w http.ResponseWriter, r *http.Request) error {
	_, key, err := s.loadACL(r)
	if err != nil {
		return err
	}
	if _, err := s.st.Apply(r.Context(), store.Delete(store.TableACL, key)); err != nil {
		return fmt.Errorf("delete ACL rule %s: %w", r.PathValue("id"), err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
