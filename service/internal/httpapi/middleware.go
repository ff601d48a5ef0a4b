package httpapi

import (
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
)

// validRequestID accepts 1 to 128 characters of [A-Za-z0-9._:-]: enough for
// UUIDs, trace ids and nginx's $request_id, and safe to log and echo.
func validRequestID(id string) bool {
	if len(id) == 0 || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_', c == '.', c == ':':
		default:
			return false
		}
	}
	return true
}

func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// requestID takes a valid X-Request-ID from the request or generates one,
// and echoes it in the response.
func requestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		id := c.Request().Header.Get(echo.HeaderXRequestID)
		if !validRequestID(id) {
			id = newRequestID()
		}
		c.Response().Header().Set(echo.HeaderXRequestID, id)
		return next(c)
	}
}

// RevisionHeader is the response header that names the running revision.
const RevisionHeader = "X-Notes-Revision"

// revisionHeader sets the revision header before anything below writes, so
// errors, probes and panics carry it too.
func revisionHeader(rev string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			c.Response().Header().Set(RevisionHeader, rev)
			return next(c)
		}
	}
}

// accessLog writes one slog line per request and records the metrics. It
// hands errors to the error handler itself so it sees the final status.
func (s *server) accessLog(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		if err := next(c); err != nil {
			c.Error(err)
		}
		elapsed := time.Since(start)
		res := c.Response()
		route := c.Path()
		if !s.routes[route] {
			route = "unmatched"
		}
		status := res.Status
		method := c.Request().Method
		s.metrics.observe(route, method, status, elapsed)
		s.log.LogAttrs(c.Request().Context(), levelFor(status), "request",
			slog.String("request_id", res.Header().Get(echo.HeaderXRequestID)),
			slog.String("method", method),
			slog.String("route", route),
			slog.String("path", c.Request().URL.Path),
			slog.Int("status", status),
			slog.Int64("bytes", res.Size),
			slog.Duration("latency", elapsed),
			slog.String("remote_ip", c.RealIP()),
		)
		return nil
	}
}

type httpMetrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	// series caches the counter and histogram of each label combination:
	// WithLabelValues hashes and compares the labels and formats the status
	// on every call. Routes and methods come from fixed sets (metricMethod),
	// so the cache and the series stay bounded whatever clients send.
	series sync.Map // seriesKey -> *series
}

// metricMethod is the method label: a client can send any token as the
// method, so anything but the standard methods counts as OTHER.
func metricMethod(m string) string {
	switch m {
	case "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS":
		return m
	}
	return "OTHER"
}

type seriesKey struct {
	route, method string
	status        int
}

type series struct {
	requests prometheus.Counter
	latency  prometheus.Observer
}

func (m *httpMetrics) observe(route, method string, status int, elapsed time.Duration) {
	method = metricMethod(method)
	k := seriesKey{route, method, status}
	v, ok := m.series.Load(k)
	if !ok {
		code := strconv.Itoa(status)
		v, _ = m.series.LoadOrStore(k, &series{
			requests: m.requests.WithLabelValues(route, method, code),
			latency:  m.latency.WithLabelValues(route, method, code),
		})
	}
	se := v.(*series)
	se.requests.Inc()
	se.latency.Observe(elapsed.Seconds())
}

func newHTTPMetrics(reg prometheus.Registerer) *httpMetrics {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "http_requests_total",
			Help: "HTTP requests by route template, method and status.",
		}, []string{"route", "method", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "http_request_duration_seconds",
			Help:    "HTTP request latency by route template, method and status.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "method", "status"}),
	}
	reg.MustRegister(m.requests, m.latency)
	return m
}

func levelFor(status int) slog.Level {
	if status >= 500 {
		return slog.LevelError
	}
	return slog.LevelInfo
}
