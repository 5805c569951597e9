package api

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/roostmq/roost/internal/api/dashboard"
	"github.com/roostmq/roost/internal/broker/authn"
	"github.com/roostmq/roost/internal/store"
)

// Options configure New.
type Options struct {
	Store  *store.Store
	Logger *slog.Logger
	// Status reports the node's identity and listeners; the raft section
	// is filled from Store when Status leaves it empty. Nil: raft only.
	Status func() Status
	// Metrics reports the broker's counters. Nil: zeros, with the retained
	// count taken from the store.
	Metrics func() Metrics
	// HashParams hash the passwords of users created or changed through
	// the API (authn.password_hash). Zero: sha256 with a salt prefix.
	HashParams authn.HashParams
	// UserIDType is the user kind when a request names none
	// (authn.user_id_type): username (default) or clientid.
	UserIDType string
	// DefaultUserKind, when set, gives that kind instead of UserIDType,
	// at each request (the broker's, which follows the cluster config
	// override of authn.user_id_type).
	DefaultUserKind func() string
	// TokenKey signs admin bearer tokens (HMAC-SHA256). Nil: a random key
	// made by New, so tokens die with the process and hold only on the
	// node that issued them. Give every node the same key (for example
	// one derived from node.cookie) for tokens valid cluster-wide.
	TokenKey []byte
	// Cluster serves /api/v1/cluster (membership). Nil: no such routes.
	Cluster ClusterAdmin
	// TokenTTL is how long a bearer token lives (default 1h).
	TokenTTL time.Duration
	// Prometheus serves GET /metrics (internal/metrics). Nil: no such
	// route. Callers authenticate as for the API (any role may read it),
	// unless PublicMetrics (api.metrics_auth = false) lets anyone scrape.
	Prometheus    http.Handler
	PublicMetrics bool
}

// Server serves the REST API of one node.
type Server struct {
	opts     Options
	st       *store.Store
	log      *slog.Logger
	tokenKey []byte
	mux      *http.ServeMux
	router   http.Handler
	// dash serves the web dashboard on the API port (nil: its embedded
	// files are broken, logged at New).
	dash http.Handler
}

// New builds the API server. It does not listen: see Serve.
func New(opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.HashParams.Algorithm == "" {
		opts.HashParams.Algorithm = "sha256"
	}
	if opts.UserIDType == "" || opts.UserIDType == "both" { // both: users by name by default
		opts.UserIDType = store.KindUsername
	}
	if opts.TokenTTL <= 0 {
		opts.TokenTTL = time.Hour
	}
	s := &Server{opts: opts, st: opts.Store, log: opts.Logger.With("component", "api"),
		tokenKey: opts.TokenKey, mux: http.NewServeMux()}
	if len(s.tokenKey) == 0 {
		s.tokenKey = make([]byte, 32)
		rand.Read(s.tokenKey)
	}
	s.routes()
	s.configRoutes()
	s.clusterRoutes()
	s.router = s.jsonFallback(s.mux)
	if d, err := dashboard.New(); err != nil {
		s.log.Error("api: the web dashboard is not served", "err", err)
	} else {
		s.dash = d
	}
	return s
}

func (s *Server) routes() {
	h := func(pattern string, fn func(http.ResponseWriter, *http.Request) error) {
		s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			if err := fn(w, r); err != nil {
				s.writeError(w, r, err)
			}
		})
	}
	h("POST /api/v1/login", s.login)

	if s.opts.Prometheus != nil {
		s.mux.Handle("GET /metrics", s.opts.Prometheus)
	}
	h("GET /api/v1/status", s.getStatus)
	h("GET /api/v1/metrics", s.getMetrics)
	h("GET /api/v1/data/digest", s.getDigest)

	h("GET /api/v1/users", s.listUsers)
	h("POST /api/v1/users", s.createUser)
	h("POST /api/v1/users/bulk", s.createUsersBulk)
	// {id} alone: the id under the default kind (UserIDType).
	h("GET /api/v1/users/{id}", s.getUser)
	h("PUT /api/v1/users/{id}", s.updateUser)
	h("DELETE /api/v1/users/{id}", s.deleteUser)
	h("GET /api/v1/users/{kind}/{id}", s.getUser)
	h("PUT /api/v1/users/{kind}/{id}", s.updateUser)
	h("DELETE /api/v1/users/{kind}/{id}", s.deleteUser)

	h("GET /api/v1/acl", s.listACL)
	h("POST /api/v1/acl", s.createACL)
	h("POST /api/v1/acl/bulk", s.createACLBulk)
	h("GET /api/v1/acl/{id}", s.getACL)
	h("DELETE /api/v1/acl/{id}", s.deleteACL)

	h("GET /api/v1/banned", s.listBans)
	h("POST /api/v1/banned", s.createBan)
	h("GET /api/v1/banned/{kind}/{value...}", s.getBan)
	h("DELETE /api/v1/banned/{kind}/{value...}", s.deleteBan)

	h("GET /api/v1/retained", s.listRetained)
	h("GET /api/v1/retained/{topic...}", s.getRetained)
	h("DELETE /api/v1/retained/{topic...}", s.deleteRetained)

	h("GET /api/v1/api_keys", s.listAPIKeys)
	h("POST /api/v1/api_keys", s.createAPIKey)
	h("GET /api/v1/api_keys/{name}", s.getAPIKey)
	h("PUT /api/v1/api_keys/{name}", s.updateAPIKey)
	h("DELETE /api/v1/api_keys/{name}", s.deleteAPIKey)
}

// Handle adds a route to the API (for the packages that own later
// resources: data export/import, backups, cluster). fn's error is
// answered as JSON like the built-in routes'.
func (s *Server) Handle(pattern string, fn func(http.ResponseWriter, *http.Request) error) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		if err := fn(w, r); err != nil {
			s.writeError(w, r, err)
		}
	})
}

// Handler serves the API to callers that authenticate with an API key
// (HTTP basic auth, name:secret) or an admin bearer token, and the web
// dashboard under /dashboard/ (its files need no credentials: they hold
// no data, and call the API with the token of the admin who logs in on
// them). GET / redirects there.
func (s *Server) Handler() http.Handler {
	api := s.logRequests(s.authenticate(s.router))
	if s.dash == nil {
		return api
	}
	mux := http.NewServeMux()
	mux.Handle(dashboard.Prefix, s.dash)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, dashboard.Prefix, http.StatusFound)
	})
	mux.Handle("/", api)
	return mux
}

// LocalHandler serves the API without authentication, for the unix
// socket in the data dir: whoever may open the socket is trusted. It
// does not serve the dashboard (a browser does not reach the socket).
func (s *Server) LocalHandler() http.Handler {
	local := &Caller{Kind: "local", Name: "ctl", Role: RoleAdministrator}
	api := s.logRequests(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.router.ServeHTTP(w, r.WithContext(withCaller(r.Context(), local)))
	}))
	// Go's profiler, for whoever may open the socket (the node's user):
	// memory and CPU questions about a running node need it, and it never
	// reaches the network.
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.Handle("/", api)
	return mux
}

// jsonFallback answers requests that match no route (404) or none for
// their method (405) in the API's JSON error format.
func (s *Server) jsonFallback(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := mux.Handler(r); pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		rec := &statusOnly{header: http.Header{}}
		mux.ServeHTTP(rec, r)
		switch rec.status {
		case http.StatusMethodNotAllowed:
			w.Header().Set("Allow", rec.header.Get("Allow"))
			s.writeError(w, r, errorf(http.StatusMethodNotAllowed, CodeMethodNotAllowed,
				"method %s not allowed on %s (allowed: %s)", r.Method, r.URL.Path, rec.header.Get("Allow")))
		case http.StatusNotFound, 0:
			s.writeError(w, r, notFound("no such API endpoint: %s %s", r.Method, r.URL.Path))
		default: // a redirect to the cleaned path
			for k, v := range rec.header {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.status)
		}
	})
}

// statusOnly records the status and headers of a response, dropping its body.
type statusOnly struct {
	header http.Header
	status int
}

func (s *statusOnly) Header() http.Header         { return s.header }
func (s *statusOnly) Write(b []byte) (int, error) { return len(b), nil }
func (s *statusOnly) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
}

// logRequests logs every change at info level (an audit trail of who did
// what), refused requests at warn level and reads at debug level.
func (s *Server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		holder := &callerHolder{}
		next.ServeHTTP(sw, r.WithContext(context.WithValue(r.Context(), callerHolderKey{}, holder)))
		level := slog.LevelDebug
		switch {
		case sw.status == http.StatusUnauthorized || sw.status == http.StatusForbidden:
			level = slog.LevelWarn // refused callers are worth seeing
		case r.Method != http.MethodGet && r.Method != http.MethodHead:
			level = slog.LevelInfo
		}
		who := "-"
		if c := holder.c; c != nil {
			who = c.String()
		}
		s.log.Log(r.Context(), level, "api request", "method", r.Method, "path", r.URL.Path,
			"status", sw.status, "caller", who, "remote", r.RemoteAddr, "duration", time.Since(start))
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the underlying writer
// (flushing streamed exports).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Serve serves h on ln until ctx ends, then shuts down gracefully: it
// stops accepting, lets requests in flight finish (for up to 10s), and
// returns nil. It returns an error only if serving fails.
func (s *Server) Serve(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("api: serve on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	if err != nil {
		srv.Close()
	}
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		return fmt.Errorf("api: serve on %s: %w", ln.Addr(), serr)
	}
	if err != nil {
		return fmt.Errorf("api: shut down %s: %w", ln.Addr(), err)
	}
	return nil
}

// maxSocketPath is the longest unix socket path Linux accepts
// (sun_path is 108 bytes with the terminating NUL).
const maxSocketPath = 107

// ListenUnix listens on the unix socket at path with mode 0600, for
// LocalHandler. A stale socket left by a node that died is replaced; a
// socket another process still serves is an error.
func ListenUnix(path string) (net.Listener, error) {
	if len(path) > maxSocketPath {
		return nil, fmt.Errorf("api: socket path %s is %d bytes, longer than the %d a unix socket allows: use a shorter data dir", path, len(path), maxSocketPath)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("api: %s exists and is not a socket: move it away", path)
		}
		c, err := net.DialTimeout("unix", path, time.Second)
		if err == nil {
			c.Close()
			return nil, fmt.Errorf("api: another process is serving the socket %s", path)
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("api: check existing socket %s: %w", path, err)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("api: remove stale socket %s: %w", path, err)
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("api: listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("api: restrict socket %s to its owner: %w", path, err)
	}
	return ln, nil
}

// requireKind checks a principal kind against the allowed ones.
func requireKind(field, kind string, allowed ...string) error {
	for _, a := range allowed {
		if kind == a {
			return nil
		}
	}
	if kind == "" {
		return fieldError(field, "required (one of %s)", strings.Join(allowed, ", "))
	}
	return fieldError(field, "must be one of %s, got %q", strings.Join(allowed, ", "), kind)
}
