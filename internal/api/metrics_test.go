package api

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/roostmq/roost/internal/metrics"
)

// scrapeStatus GETs /metrics from base: the status and, for a 200, that
// the body is Prometheus text with a raft metric in it.
func scrapeStatus(t *testing.T, base, auth string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", base+"/metrics", nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode == http.StatusOK {
		if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") || !strings.Contains(string(b), "\nroost_raft_term ") {
			t.Errorf("GET /metrics: %s, not the Prometheus text format:\n%.300s", ct, b)
		}
	} else if ct := res.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("GET /metrics refused with %s, not a JSON error", ct)
	}
	return res.StatusCode
}

func TestMetricsRouteAuth(t *testing.T) {
	t.Parallel()
	withMetrics := func(public bool) func(*Options) {
		return func(o *Options) {
			o.Prometheus = metrics.Handler(metrics.Options{Store: o.Store, Logger: quietLogger()})
			o.PublicMetrics = public
		}
	}
	e := newEnv(t, withMetrics(false))
	if got := scrapeStatus(t, e.remote.URL, ""); got != http.StatusUnauthorized {
		t.Errorf("scrape without credentials: HTTP %d, want 401 (api.metrics_auth defaults to true)", got)
	}
	var k APIKeyCreated
	e.expect(e.do("POST", "/api/v1/api_keys", APIKeyInput{Name: "prometheus"}), http.StatusCreated, &k)
	if got := scrapeStatus(t, e.remote.URL, basic("prometheus", k.Secret)); got != http.StatusOK {
		t.Errorf("scrape with an API key: HTTP %d, want 200", got)
	}
	if got := scrapeStatus(t, e.remote.URL, basic("prometheus", k.Secret+"x")); got != http.StatusUnauthorized {
		t.Errorf("scrape with a wrong secret: HTTP %d, want 401", got)
	}
	if got := scrapeStatus(t, e.local.URL, ""); got != http.StatusOK {
		t.Errorf("scrape over the local socket: HTTP %d, want 200", got)
	}

	// api.metrics_auth = false: /metrics is open, nothing else is.
	p := newEnv(t, withMetrics(true))
	if got := scrapeStatus(t, p.remote.URL, ""); got != http.StatusOK {
		t.Errorf("public metrics, scrape without credentials: HTTP %d, want 200", got)
	}
	p.expectErr(send(t, p.remote.URL, "GET", "/api/v1/status", "", nil), http.StatusUnauthorized, CodeUnauthorized, "authentication required")
	p.expectErr(send(t, p.remote.URL, "GET", "/metrics/x", "", nil), http.StatusUnauthorized, CodeUnauthorized, "authentication required")
}
