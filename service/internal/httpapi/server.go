// Package httpapi is the HTTP layer: New returns the API as an
// http.Handler, with Echo v4 behind it: the routes (routes.go), small
// handlers, middleware (request id, access log, metrics), one writer of
// response bodies and one error handler that writes RFC 9457
// application/problem+json. The caller runs it in its own http.Server.
package httpapi

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/notes-stack/notes/service/internal/notes"
)

// readyTimeout bounds the SELECT 1 of /readyz.
const readyTimeout = time.Second

// Options are the dependencies of the HTTP layer.
type Options struct {
	Store notes.Store
	// Logger gets the access log and 5xx causes. Nil discards them.
	Logger *slog.Logger
	// MaxBodyBytes is the request body limit (413 above it; default 1 MiB).
	MaxBodyBytes int64
	// Registry receives the HTTP metrics and is served on /metrics. Nil
	// makes a fresh registry with only the HTTP metrics.
	Registry *prometheus.Registry
	// Draining, when set and true, makes /readyz answer 503 and every
	// response close its connection (a proxy's idle keep-alive connection
	// is then never closed under a request it is sending).
	Draining *atomic.Bool
	// Version is reported by GET /.
	Version string
	// Revision, when set, is sent as X-Notes-Revision on every response
	// and reported by GET /: a deploy proves the new replicas answer
	// through the proxy by asking for it.
	Revision string
	// WriteAuth says which writes need "Authorization: Bearer <token>"
	// with one of Tokens; "" is WriteAuthModify (PATCH and DELETE).
	WriteAuth WriteAuth
	// Tokens are the API tokens; nil (or none) authorises no request.
	Tokens *Tokens
	// TrustedProxies are the networks whose X-Forwarded-For names the
	// client (remote_ip in the access log). From any other peer the header
	// is ignored: a client could write anything into it.
	TrustedProxies []*net.IPNet
}

type server struct {
	store     notes.Store
	log       *slog.Logger
	maxBody   int64
	draining  *atomic.Bool
	started   atomic.Bool // the database answered once (handleStartedz)
	version   string
	revision  string
	writeAuth WriteAuth
	tokens    *Tokens
	metrics   *httpMetrics
	registry  *prometheus.Registry
	ready     *readyCheck
	// routes are the route templates of the router, the only values of the
	// metrics' route label besides "unmatched". Set once in New, before
	// any request.
	routes map[string]bool
}

// New returns the handler serving the whole API. The caller owns the
// http.Server around it (timeouts, shutdown).
func New(o Options) http.Handler {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = 1 << 20
	}
	if o.Draining == nil {
		o.Draining = new(atomic.Bool)
	}
	if o.Registry == nil {
		o.Registry = prometheus.NewRegistry()
	}
	if o.WriteAuth == "" {
		o.WriteAuth = WriteAuthModify
	}
	s := &server{
		store:     o.Store,
		log:       o.Logger,
		maxBody:   o.MaxBodyBytes,
		draining:  o.Draining,
		version:   o.Version,
		revision:  o.Revision,
		writeAuth: o.WriteAuth,
		tokens:    o.Tokens,
		metrics:   newHTTPMetrics(o.Registry),
		registry:  o.Registry,
		ready:     &readyCheck{ping: func(ctx context.Context) error { return o.Store.Ping(ctx) }, ttl: readyCacheTTL, timeout: readyTimeout},
	}

	e := echo.New()
	e.HTTPErrorHandler = s.errorHandler
	e.IPExtractor = ipExtractor(o.TrustedProxies)
	// Recover first: a panic anywhere below becomes a 500 problem, never a
	// dropped connection. The inner one lets the access log see the 500.
	e.Use(middleware.RecoverWithConfig(middleware.RecoverConfig{LogErrorFunc: s.logPanic}))
	if o.Revision != "" {
		e.Use(revisionHeader(o.Revision))
	}
	e.Use(s.closeWhileDraining)
	e.Use(requestID)
	e.Use(s.accessLog)
	e.Use(middleware.RecoverWithConfig(middleware.RecoverConfig{LogErrorFunc: s.logPanic}))
	s.addRoutes(e)
	s.routes = make(map[string]bool)
	for _, r := range e.Routes() {
		s.routes[r.Path] = true
	}
	return e
}

// closeWhileDraining asks for the connection to be closed after the
// response while the service drains: net/http then closes it itself, and
// a keep-alive peer reads the header before it could reuse the
// connection, so no request of its is ever cut off by the close.
func (s *server) closeWhileDraining(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if s.draining.Load() {
			c.Response().Header().Set(echo.HeaderConnection, "close")
		}
		return next(c)
	}
}

func (s *server) logPanic(c echo.Context, err error, stack []byte) error {
	s.log.Error("panic", "request_id", c.Response().Header().Get(echo.HeaderXRequestID),
		"err", err.Error(), "stack", string(stack))
	return err
}

// ipExtractor reads the client address from X-Forwarded-For only behind a
// trusted proxy, taking the rightmost address no trusted proxy added.
// Echo's defaults would trust every loopback, link-local and private peer,
// that is any container next to the service: trust only what is listed.
func ipExtractor(trusted []*net.IPNet) echo.IPExtractor {
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, n := range trusted {
		opts = append(opts, echo.TrustIPRange(n))
	}
	return echo.ExtractIPFromXFFHeader(opts...)
}
