// Package dashboard serves Roost's web dashboard: static HTML, CSS and
// JavaScript (ES modules, no build step) embedded in the binary. The
// pages hold no data and need no login to load; everything they show
// comes from the REST API, called with the bearer token of an admin who
// logged in on the page (docs/dashboard.md).
package dashboard

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

// Prefix is where the dashboard is served on the API port.
const Prefix = "/dashboard/"

//go:embed static
var static embed.FS

// ContentSecurityPolicy lets the pages load only their own scripts,
// styles and images and talk only to their own origin: no inline
// script, no eval, no framing, no form posts elsewhere. Blob URLs are
// allowed as images (none are used yet) so downloads made from fetched
// blobs stay within the policy.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; " +
	"connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"

// contentTypes are the only kinds of file served; anything else in
// static/ is a mistake and is not served.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".svg":  "image/svg+xml",
	".png":  "image/png",
}

type asset struct {
	body  []byte
	ctype string
	etag  string
}

// Handler serves the dashboard under Prefix. Requests for "" (the
// prefix itself) get index.html; unknown files and directories are 404
// (there is no directory listing); methods other than GET and HEAD 405.
// Every answer carries the security headers; files are revalidated on
// every load (Cache-Control: no-cache with a content ETag), so an
// upgraded node never mixes old and new scripts.
type Handler struct {
	assets map[string]asset // by path under static/, "index.html"
}

// New returns the dashboard's handler, or an error when the embedded
// files hold a kind of file it does not know how to serve.
func New() (*Handler, error) {
	h := &Handler{assets: map[string]asset{}}
	err := fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		ctype, ok := contentTypes[path.Ext(p)]
		if !ok {
			return fmt.Errorf("dashboard: %s: no content type for %q files", p, path.Ext(p))
		}
		b, err := static.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		h.assets[strings.TrimPrefix(p, "static/")] = asset{body: b, ctype: ctype, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if _, ok := h.assets["index.html"]; !ok {
		return nil, fmt.Errorf("dashboard: static/index.html missing")
	}
	return h, nil
}

// setSecurityHeaders applies to every answer, errors included.
func setSecurityHeaders(hd http.Header) {
	hd.Set("Content-Security-Policy", ContentSecurityPolicy)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("Cross-Origin-Opener-Policy", "same-origin")
	hd.Set("Cross-Origin-Resource-Policy", "same-origin")
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	setSecurityHeaders(w.Header())
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed: the dashboard's files are only read", http.StatusMethodNotAllowed)
		return
	}
	name, ok := strings.CutPrefix(r.URL.Path, Prefix)
	if !ok {
		http.NotFound(w, r)
		return
	}
	if name == "" {
		name = "index.html"
	}
	a, ok := h.assets[name]
	if !ok {
		http.Error(w, "404 no such dashboard file: "+r.URL.Path, http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", a.ctype)
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("ETag", a.etag)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
}
