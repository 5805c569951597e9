package dashboard

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func newHandler(t *testing.T) *Handler {
	t.Helper()
	h, err := New()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func get(h http.Handler, method, path string, hdr ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func checkSecurityHeaders(t *testing.T, what string, w *httptest.ResponseRecorder) {
	t.Helper()
	for k, want := range map[string]string{
		"Content-Security-Policy": ContentSecurityPolicy,
		"X-Content-Type-Options":  "nosniff",
		"X-Frame-Options":         "DENY",
		"Referrer-Policy":         "no-referrer",
	} {
		if got := w.Header().Get(k); got != want {
			t.Errorf("%s: %s = %q, want %q", what, k, got, want)
		}
	}
}

// Every embedded file is served with its own content type, the security
// headers, revalidation on each load and its exact bytes.
func TestServesEveryFileWithItsType(t *testing.T) {
	h := newHandler(t)
	wantType := map[string]string{
		"index.html": "text/html; charset=utf-8", "style.css": "text/css; charset=utf-8",
		"app.js": "text/javascript; charset=utf-8", "favicon.svg": "image/svg+xml",
	}
	n := 0
	err := fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		n++
		name := strings.TrimPrefix(p, "static/")
		w := get(h, http.MethodGet, Prefix+name)
		if w.Code != http.StatusOK {
			t.Errorf("%s: status %d", name, w.Code)
			return nil
		}
		body, _ := static.ReadFile(p)
		if w.Body.String() != string(body) {
			t.Errorf("%s: body differs from the embedded file", name)
		}
		ct := w.Header().Get("Content-Type")
		if want, ok := wantType[name]; ok && ct != want {
			t.Errorf("%s: Content-Type %q, want %q", name, ct, want)
		}
		if strings.HasSuffix(name, ".js") && ct != "text/javascript; charset=utf-8" {
			t.Errorf("%s: Content-Type %q: ES modules need a JavaScript type", name, ct)
		}
		if cc := w.Header().Get("Cache-Control"); cc != "no-cache" {
			t.Errorf("%s: Cache-Control %q, want no-cache", name, cc)
		}
		if w.Header().Get("ETag") == "" {
			t.Errorf("%s: no ETag", name)
		}
		checkSecurityHeaders(t, name, w)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 6 {
		t.Fatalf("only %d files embedded", n)
	}
}

func TestIndexAtThePrefixAndRevalidation(t *testing.T) {
	h := newHandler(t)
	w := get(h, http.MethodGet, Prefix)
	index, _ := static.ReadFile("static/index.html")
	if w.Code != http.StatusOK || w.Body.String() != string(index) || w.Header().Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("GET %s: %d %q", Prefix, w.Code, w.Header().Get("Content-Type"))
	}
	etag := w.Header().Get("ETag")
	w = get(h, http.MethodGet, Prefix+"index.html", "If-None-Match", etag)
	if w.Code != http.StatusNotModified || w.Body.Len() != 0 {
		t.Fatalf("revalidation with the ETag: %d, %d bytes, want 304 and none", w.Code, w.Body.Len())
	}
	if w := get(h, http.MethodGet, Prefix+"app.js", "If-None-Match", etag); w.Code != http.StatusOK {
		t.Fatalf("another file's ETag matched: %d", w.Code)
	}
	w = get(h, http.MethodHead, Prefix+"style.css")
	if w.Code != http.StatusOK || w.Body.Len() != 0 || w.Header().Get("Content-Type") != "text/css; charset=utf-8" {
		t.Fatalf("HEAD: %d, %d bytes, %q", w.Code, w.Body.Len(), w.Header().Get("Content-Type"))
	}
}

// No listing of directories, no files from outside static/, nothing but
// reads; errors carry the security headers too.
func TestNotFoundNoListingReadOnly(t *testing.T) {
	h := newHandler(t)
	for _, p := range []string{
		Prefix + "nope.js", Prefix + "static/", Prefix + "static/index.html", Prefix + "x/", Prefix + "index.html/",
		Prefix + "../dashboard.go", Prefix + "%2e%2e/dashboard.go", Prefix + "dashboard.go", "/elsewhere",
	} {
		w := get(h, http.MethodGet, p)
		if w.Code != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", p, w.Code)
		}
		if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
			t.Errorf("GET %s: Content-Type %q", p, ct)
		}
		if strings.Contains(w.Body.String(), "<a href") || strings.Contains(w.Body.String(), "package dashboard") {
			t.Errorf("GET %s: body looks like a listing or a source file: %q", p, w.Body.String())
		}
		checkSecurityHeaders(t, "GET "+p, w)
	}
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete} {
		w := get(h, m, Prefix+"index.html")
		if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "GET, HEAD" {
			t.Errorf("%s: %d, Allow %q", m, w.Code, w.Header().Get("Allow"))
		}
		checkSecurityHeaders(t, m, w)
	}
}

// The policy forbids what an attacker would need: inline script, eval,
// other origins, framing.
func TestContentSecurityPolicyIsStrict(t *testing.T) {
	for _, want := range []string{"default-src 'none'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'", "base-uri 'none'", "form-action 'none'"} {
		if !strings.Contains(ContentSecurityPolicy, want) {
			t.Errorf("CSP %q lacks %q", ContentSecurityPolicy, want)
		}
	}
	for _, bad := range []string{"unsafe-inline", "unsafe-eval", "*", "http:", "https:"} {
		if strings.Contains(ContentSecurityPolicy, bad) {
			t.Errorf("CSP %q allows %q", ContentSecurityPolicy, bad)
		}
	}
}

// The pages keep to the policy and to their own files: no inline script
// or style, no handler attributes, no outside URLs, no HTML built from
// strings; every file they reference is embedded.
func TestPagesKeepToThePolicy(t *testing.T) {
	h := newHandler(t)
	ref := regexp.MustCompile(`(?:src|href)="([^"#]+)"|from '\./([^']+)'`)
	for name, a := range h.assets {
		text := string(a.body)
		switch {
		case strings.HasSuffix(name, ".html"):
			if regexp.MustCompile(`<script(?:\s[^>]*)?>\s*[^<\s]`).MatchString(text) || strings.Contains(text, "<style") ||
				regexp.MustCompile(`\s(?:on[a-z]+|style)=`).MatchString(text) {
				t.Errorf("%s: inline script, style or handler (the CSP blocks them)", name)
			}
		case strings.HasSuffix(name, ".js"):
			for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("} {
				if strings.Contains(text, bad) {
					t.Errorf("%s uses %s: text from the API must go in as text", name, bad)
				}
			}
		}
		if regexp.MustCompile(`(?:src|href|url\()=?["']?(?:https?:)?//`).MatchString(text) {
			t.Errorf("%s references another origin (the node may have no internet)", name)
		}
		for _, m := range ref.FindAllStringSubmatch(text, -1) {
			target := m[1] + m[2]
			if _, ok := h.assets[strings.TrimPrefix(target, "./")]; !ok {
				t.Errorf("%s references %q, which is not embedded", name, target)
			}
		}
	}
}
