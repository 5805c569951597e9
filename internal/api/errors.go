package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/roostmq/roost/internal/store"
)

// Error codes of the {"code","message"} error body. Clients may switch on
// them: never rename one.
const (
	CodeBadRequest       = "BAD_REQUEST"
	CodeUnauthorized     = "UNAUTHORIZED"
	CodeForbidden        = "FORBIDDEN"
	CodeNotFound         = "NOT_FOUND"
	CodeAlreadyExists    = "ALREADY_EXISTS"
	CodeConflict         = "CONFLICT"
	CodeMethodNotAllowed = "METHOD_NOT_ALLOWED"
	CodeTooLarge         = "REQUEST_TOO_LARGE"
	CodeUnavailable      = "SERVICE_UNAVAILABLE"
	CodeInternal         = "INTERNAL_ERROR"
)

// Error is the JSON body of every failed request.
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Message }

func errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

func badRequest(format string, args ...any) *Error {
	return errorf(http.StatusBadRequest, CodeBadRequest, format, args...)
}

// fieldError is a 400 naming the offending field.
func fieldError(field string, format string, args ...any) *Error {
	return badRequest("field %q: %s", field, fmt.Sprintf(format, args...))
}

func notFound(format string, args ...any) *Error {
	return errorf(http.StatusNotFound, CodeNotFound, format, args...)
}

func conflict(format string, args ...any) *Error {
	return errorf(http.StatusConflict, CodeAlreadyExists, format, args...)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	_ = enc.Encode(v) // the client went away: nothing to do
}

// writeError answers err as JSON: an *Error as it is, store failures as
// 503 when the cluster cannot take writes now, anything else as 500.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var e *Error
	switch {
	case errors.As(err, &e):
	case errors.Is(err, store.ErrNotLeader), errors.Is(err, store.ErrClosed):
		e = errorf(http.StatusServiceUnavailable, CodeUnavailable, "the store cannot take writes now: %v", err)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		e = errorf(http.StatusServiceUnavailable, CodeUnavailable, "request interrupted: %v", err)
	default:
		s.log.Error("api: request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		e = errorf(http.StatusInternalServerError, CodeInternal, "internal error: %v", err)
	}
	if e.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", challenge(r))
	}
	writeJSON(w, e.Status, e)
}

// challenge is the WWW-Authenticate of a 401. Callers with a bearer
// token, and the login itself, get a Bearer challenge (RFC 6750): a
// browser shows its own username/password prompt for a Basic one, which
// on the dashboard would stall a wrong login or an expired token behind
// a dialog. Everyone else gets Basic, the API key scheme.
func challenge(r *http.Request) string {
	scheme, _, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	switch {
	case r.URL.Path == "/api/v1/login":
		return `Bearer realm="roost"`
	case strings.EqualFold(scheme, "bearer"):
		return `Bearer realm="roost", error="invalid_token"`
	}
	return `Basic realm="roost", charset="UTF-8"`
}

// Body size limits: ordinary requests are small, bulk ones may carry
// tens of thousands of records.
const (
	maxBody     = 1 << 20
	maxBulkBody = 64 << 20
)

// decode reads one JSON value from the body into v, refusing unknown
// fields and trailing data; errors name the offending field.
func decode(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	return decodeFrom(http.MaxBytesReader(w, r.Body, limit), "", v)
}

// decodeFrom decodes one JSON value from rd into v. item prefixes field
// names in errors ("[3]." for the fourth element of a bulk request).
func decodeFrom(rd io.Reader, item string, v any) error {
	dec := json.NewDecoder(rd)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err, item)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return badRequest("request body%s: more than one JSON value", where(item))
	}
	return nil
}

// where describes a bulk item for body-level errors: " (item [3])".
func where(item string) string {
	if item == "" {
		return ""
	}
	return " (item " + strings.TrimSuffix(item, ".") + ")"
}

func decodeError(err error, item string) *Error {
	var (
		syn   *json.SyntaxError
		typ   *json.UnmarshalTypeError
		large *http.MaxBytesError
	)
	switch {
	case errors.Is(err, io.EOF):
		return badRequest("request body%s: required (a JSON value)", where(item))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("request body%s: truncated JSON", where(item))
	case errors.As(err, &syn):
		return badRequest("request body%s: malformed JSON at byte %d: %v", where(item), syn.Offset, syn)
	case errors.As(err, &typ):
		if typ.Field == "" {
			return badRequest("request body%s: expected %s, got JSON %s", where(item), jsonType(typ.Type.Kind().String()), typ.Value)
		}
		return fieldError(item+typ.Field, "expected %s, got JSON %s", jsonType(typ.Type.Kind().String()), typ.Value)
	case errors.As(err, &large):
		return errorf(http.StatusRequestEntityTooLarge, CodeTooLarge, "request body: larger than %d bytes", large.Limit)
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return badRequest("field %q: unknown field", item+strings.Trim(name, `"`))
	}
	return badRequest("request body%s: %v", where(item), err)
}

func jsonType(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "slice", "array":
		return "an array"
	case "struct", "map":
		return "an object"
	}
	return "a number"
}
