package api

import (
	"fmt"
	"net/http"
	"time"

	"github.com/roostmq/roost/internal/broker"
	"github.com/roostmq/roost/internal/store"
)

// RetainedSummary is a retained message in a list: everything but the
// payload and properties.
type RetainedSummary struct {
	Topic         string    `json:"topic"`
	QoS           byte      `json:"qos"`
	PayloadSize   int       `json:"payload_size"`
	From          string    `json:"from,omitempty"`
	Created       time.Time `json:"created"`
	MessageExpiry uint32    `json:"message_expiry,omitempty"` // seconds from Created
	Expired       bool      `json:"expired"`
}

// RetainedMessage is one retained message with its payload (base64 in
// JSON) and MQTT 5 properties.
type RetainedMessage struct {
	RetainedSummary
	Payload         []byte               `json:"payload"`
	PayloadFormat   *byte                `json:"payload_format,omitempty"`
	ContentType     string               `json:"content_type,omitempty"`
	ResponseTopic   string               `json:"response_topic,omitempty"`
	CorrelationData []byte               `json:"correlation_data,omitempty"`
	UserProperties  []store.UserProperty `json:"user_properties,omitempty"`
}

func retainedSummary(now time.Time) func(m *store.Retained) RetainedSummary {
	return func(m *store.Retained) RetainedSummary {
		return RetainedSummary{Topic: m.Topic, QoS: m.QoS, PayloadSize: len(m.Payload), From: m.From,
			Created: m.Created, MessageExpiry: m.MessageExpiry, Expired: m.Expired(now)}
	}
}

// listRetained lists retained messages, those whose topic matches the
// filter ?topic= when given.
func (s *Server) listRetained(w http.ResponseWriter, r *http.Request) error {
	p, err := parsePage(r)
	if err != nil {
		return err
	}
	var keep func(string) bool
	if f := r.URL.Query().Get("topic"); f != "" {
		if err := broker.ValidFilter(f); err != nil {
			return badRequest("query parameter \"topic\": not a valid topic filter: %v", err)
		}
		keep = func(topic string) bool { return broker.MatchTopic(f, topic) }
	}
	var out Page[RetainedSummary]
	err = s.st.View(func(tx *store.Tx) (err error) {
		out, err = listTable(tx, store.TableRetained, "", keep, p, retainedSummary(time.Now()))
		return err
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// retainedTopicOf reads the topic from the path. A topic with empty
// levels, a leading or trailing '/', or a "." or ".." level must be sent
// with each '/' escaped as %2F (HTTP paths are cleaned).
func retainedTopicOf(r *http.Request) (string, error) {
	t := r.PathValue("topic")
	if err := broker.ValidTopicName(t); err != nil {
		return "", notFound("no retained message on %q: %v", t, err)
	}
	return t, nil
}

func (s *Server) loadRetained(r *http.Request) (store.Retained, string, error) {
	topic, err := retainedTopicOf(r)
	if err != nil {
		return store.Retained{}, "", err
	}
	var (
		m  store.Retained
		ok bool
	)
	err = s.st.View(func(tx *store.Tx) (err error) {
		m, ok, err = store.Get[store.Retained](tx, store.TableRetained, topic)
		return err
	})
	if err == nil && !ok {
		err = notFound("no retained message on %q", topic)
	}
	return m, topic, err
}

func (s *Server) getRetained(w http.ResponseWriter, r *http.Request) error {
	m, _, err := s.loadRetained(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, RetainedMessage{
		RetainedSummary: retainedSummary(time.Now())(&m),
		Payload:         m.Payload, PayloadFormat: m.PayloadFormat, ContentType: m.ContentType,
		ResponseTopic: m.ResponseTopic, CorrelationData: m.CorrelationData, UserProperties: m.UserProperties,
	})
	return nil
}

func (s *Server) deleteRetained(w http.ResponseWriter, r *http.Request) error {
	_, topic, err := s.loadRetained(r)
	if err != nil {
		return err
	}
	if _, err := s.st.Apply(r.Context(), store.Delete(store.TableRetained, topic)); err != nil {
		return fmt.Errorf("delete retained message on %q: %w", topic, err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
