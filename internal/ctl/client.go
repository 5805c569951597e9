// Package ctl is the client side of `roost ctl`: it talks HTTP to a
// running node's REST API, either over the unix socket in the node's data
// dir (no credentials: the socket's permissions are the credential) or to
// a remote node's api.bind with an API key.
//
// The wire types here mirror internal/api's JSON; ctl does not import api
// (it sits below it), and the cmd/roost tests run both against each other.
package ctl

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"
)

// SocketName is the file name of the node's API socket in its data dir.
const SocketName = "roost.sock"

// Client calls one node's REST API.
type Client struct {
	base   string // "http://roost" for the socket, or the remote URL
	hc     *http.Client
	apiKey string // name:secret for basic auth; empty over the socket
	socket string
}

// NewLocal returns a client for the node whose API socket is at
// socketPath (<data_dir>/roost.sock).
func NewLocal(socketPath string) *Client {
	c := &Client{base: "http://roost", socket: socketPath}
	c.hc = &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			conn, err := (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, "unix", socketPath)
			if err != nil {
				return nil, localDialError(socketPath, err)
			}
			return conn, nil
		},
		MaxIdleConns:    2,
		IdleConnTimeout: 30 * time.Second,
	}}
	return c
}

// NewRemote returns a client for the node at baseURL ("http://host:18083";
// "host:port" means http) that authenticates with apiKey "name:secret".
func NewRemote(baseURL, apiKey string) (*Client, error) {
	if !strings.Contains(baseURL, "://") {
		baseURL = "http://" + baseURL
	}
	u, err := url.Parse(baseURL)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("bad node URL %q: want http(s)://host:port", baseURL)
	}
	name, secret, ok := strings.Cut(apiKey, ":")
	if !ok || name == "" || secret == "" {
		return nil, errors.New("an API key is needed for a remote node: NAME:SECRET (from `roost ctl apikeys create NAME`)")
	}
	return &Client{base: strings.TrimRight(u.String(), "/"), apiKey: apiKey,
		hc: &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}}, nil
}

// UnreachableError says the node could not be reached at all.
type UnreachableError struct {
	Msg string
	Err error
}

func (e *UnreachableError) Error() string { return e.Msg }
func (e *UnreachableError) Unwrap() error { return e.Err }

func localDialError(path string, err error) error {
	hint := "(is `roost start` running with this data dir?)"
	switch {
	case errors.Is(err, os.ErrNotExist):
		return &UnreachableError{Msg: fmt.Sprintf("cannot reach the local node: no socket at %s %s", path, hint), Err: err}
	case errors.Is(err, syscall.ECONNREFUSED):
		return &UnreachableError{Msg: fmt.Sprintf("cannot reach the local node: nothing listens on %s (a stale socket) %s", path, hint), Err: err}
	case errors.Is(err, os.ErrPermission):
		return &UnreachableError{Msg: fmt.Sprintf("cannot reach the local node: permission denied on %s (run as the user that runs the node)", path), Err: err}
	}
	return &UnreachableError{Msg: fmt.Sprintf("cannot reach the local node at %s: %v", path, err), Err: err}
}

// Error is an error answer of the API: {"code","message"} and the status.
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Message }

// IsNotFound reports whether err is the API's 404.
func IsNotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == http.StatusNotFound
}

// Request sends a request with an optional body (a JSON-encoded value,
// or an io.Reader sent as is) and returns the response for the caller to
// read; a non-2xx answer is returned as an *Error. For streams (exports,
// backups); most callers want Do.
func (c *Client) Request(ctx context.Context, method, path string, body any) (*http.Response, error) {
	var rd io.Reader
	ctype := ""
	switch b := body.(type) {
	case nil:
	case io.Reader:
		rd, ctype = b, "application/octet-stream"
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
		rd, ctype = bytes.NewReader(j), "application/json"
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, fmt.Errorf("build request %s %s: %w", method, path, err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	req.Header.Set("Accept", "application/json")
	if c.apiKey != "" {
		name, secret, _ := strings.Cut(c.apiKey, ":")
		req.SetBasicAuth(name, secret)
	}
	res, err := c.hc.Do(req)
	if err != nil {
		var ue *UnreachableError
		if errors.As(err, &ue) {
			return nil, ue
		}
		if c.socket == "" {
			return nil, &UnreachableError{Msg: fmt.Sprintf("cannot reach the node at %s: %v", c.base, unwrapURLError(err)), Err: err}
		}
		return nil, fmt.Errorf("%s %s: %w", method, path, unwrapURLError(err))
	}
	if res.StatusCode >= 300 {
		defer res.Body.Close()
		return nil, readError(res)
	}
	return res, nil
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func readError(res *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	e := &Error{Status: res.StatusCode}
	if json.Unmarshal(b, e) != nil || e.Message == "" {
		msg := strings.TrimSpace(string(b))
		if msg == "" {
			msg = http.StatusText(res.StatusCode)
		}
		e.Code, e.Message = "HTTP_"+fmt.Sprint(res.StatusCode), fmt.Sprintf("HTTP %d: %s", res.StatusCode, msg)
	}
	return e
}

// Do sends a request and decodes a JSON answer into out (nil: discard).
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	res, err := c.Request(ctx, method, path, in)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if out == nil || res.StatusCode == http.StatusNoContent {
		_, _ = io.Copy(io.Discard, res.Body)
		return nil
	}
	if err := json.NewDecoder(res.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// pageSize is how many records list helpers fetch per request.
const pageSize = 1000

// listAll fetches every page of a list endpoint (path may carry a query).
func listAll[T any](ctx context.Context, c *Client, path string) ([]T, error) {
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	out := []T{}
	for page := 1; ; page++ {
		var p struct {
			Data []T `json:"data"`
			Meta Meta
		}
		if err := c.Do(ctx, http.MethodGet, fmt.Sprintf("%s%spage=%d&limit=%d", path, sep, page, pageSize), nil, &p); err != nil {
			return nil, err
		}
		out = append(out, p.Data...)
		if !p.Meta.HasNext || len(p.Data) == 0 {
			return out, nil
		}
	}
}

// PathEscape escapes s as one path segment: '/' as %2F (and a segment
// of only dots as %2E), so that HTTP path cleaning never changes an id or
// a topic ("a//b", "/x", "..").
func PathEscape(s string) string {
	e := url.PathEscape(s)
	if strings.Trim(e, ".") == "" {
		e = strings.ReplaceAll(e, ".", "%2E")
	}
	return e
}
