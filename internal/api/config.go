package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/roostmq/roost/internal/config"
	"github.com/roostmq/roost/internal/store"
)

// Cluster config overrides (the replicated config table): one value for
// the whole cluster, which the nodes follow at run time before their own
// config files (see internal/config RuntimeOverrides for the keys).

// ConfigOverride is a cluster config override as the API shows it.
type ConfigOverride struct {
	Key       string          `json:"key"`
	Value     json.RawMessage `json:"value"`
	UpdatedAt time.Time       `json:"updated_at,omitzero"`
	// Followed says the nodes act on the key at run time; other keys are
	// kept (and exported) but change nothing.
	Followed bool `json:"followed"`
}

// ConfigOverrideInput is the body of PUT /api/v1/config/overrides/{key}.
type ConfigOverrideInput struct {
	Value json.RawMessage `json:"value"`
}

func configOverrideView(o *store.ConfigOverride) ConfigOverride {
	_, followed := config.RuntimeOverrides[o.Key]
	return ConfigOverride{Key: o.Key, Value: o.Value, UpdatedAt: o.UpdatedAt, Followed: followed}
}

func (s *Server) configRoutes() {
	s.Handle("GET /api/v1/config/overrides", s.listConfigOverrides)
	s.Handle("GET /api/v1/config/overrides/{key}", s.getConfigOverride)
	s.Handle("PUT /api/v1/config/overrides/{key}", s.putConfigOverride)
	s.Handle("DELETE /api/v1/config/overrides/{key}", s.deleteConfigOverride)
}

func (s *Server) listConfigOverrides(w http.ResponseWriter, r *http.Request) error {
	p, err := parsePage(r)
	if err != nil {
		return err
	}
	var out Page[ConfigOverride]
	err = s.st.View(func(tx *store.Tx) (err error) {
		out, err = listTable(tx, store.TableConfig, "", nil, p, configOverrideView)
		return err
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) loadConfigOverride(key string) (store.ConfigOverride, error) {
	var (
		o  store.ConfigOverride
		ok bool
	)
	err := s.st.View(func(tx *store.Tx) (err error) {
		o, ok, err = store.Get[store.ConfigOverride](tx, store.TableConfig, key)
		return err
	})
	if err == nil && !ok {
		err = notFound("no cluster config override %q (every node follows its own config for it)", key)
	}
	return o, err
}

func (s *Server) getConfigOverride(w http.ResponseWriter, r *http.Request) error {
	o, err := s.loadConfigOverride(r.PathValue("key"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, configOverrideView(&o))
	return nil
}

// putConfigOverride sets an override of a key the nodes follow; others
// are refused, since setting them would change nothing.
func (s *Server) putConfigOverride(w http.ResponseWriter, r *http.Request) error {
	key := r.PathValue("key")
	var in ConfigOverrideInput
	if err := decode(w, r, maxBody, &in); err != nil {
		return err
	}
	if len(in.Value) == 0 {
		return fieldError("value", "required")
	}
	if _, err := config.ParseOverride(key, in.Value); err != nil {
		if _, followed := config.RuntimeOverrides[key]; !followed {
			return badRequest("%v", err) // the key of the path, not the value, is wrong
		}
		return fieldError("value", "%v", err)
	}
	o := store.ConfigOverride{V: store.RecordVersion, Key: key, Value: in.Value, UpdatedAt: time.Now().UTC()}
	op, err := store.Put(store.TableConfig, key, o)
	if err != nil {
		return err
	}
	if _, err := s.st.Apply(r.Context(), op); err != nil {
		return fmt.Errorf("set cluster config override %q: %w", key, err)
	}
	s.log.Info("api: cluster config override set", "key", key, "value", string(in.Value), "by", callerName(r))
	writeJSON(w, http.StatusOK, configOverrideView(&o))
	return nil
}

func (s *Server) deleteConfigOverride(w http.ResponseWriter, r *http.Request) error {
	key := r.PathValue("key")
	if _, err := s.loadConfigOverride(key); err != nil {
		return err
	}
	if _, err := s.st.Apply(r.Context(), store.Delete(store.TableConfig, key)); err != nil {
		return fmt.Errorf("remove cluster config override %q: %w", key, err)
	}
	s.log.Info("api: cluster config override removed", "key", key, "by", callerName(r))
	w.WriteHeader(http.StatusNoContent)
	return nil
}
