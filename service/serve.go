package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/notes-stack/notes/service/internal/config"
	"github.com/notes-stack/notes/service/internal/httpapi"
	"github.com/notes-stack/notes/service/internal/postgres"
)

// startDebug is set by pprof.go in builds with -tags pprof.
var startDebug = func(getenv func(string) string, log *slog.Logger) {}

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func runServe(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	if err := parseFlags(fs, args, stderr, "Usage: notes serve\n\nRuns the HTTP service. Configuration comes from environment variables (docs/service.md).\n"); err != nil {
		return helpOK(err)
	}
	if fs.NArg() > 0 {
		return usageErrorf("serve takes no arguments")
	}
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	logw := newBufferedLog(stdout, 100*time.Millisecond)
	defer logw.Close()
	log := newLogger(cfg, logw)
	startDebug(getenv, log)

	// The pool connects lazily: the service starts while the database is
	// down and /readyz reports it until it is back.
	pool, err := postgres.NewPool(ctx, cfg.DatabaseURL, postgres.PoolOptions{MaxConns: cfg.DBMaxConns, MinConns: cfg.DBMinConns})
	if err != nil {
		return &exitError{code: 2, err: &config.Error{Var: "DATABASE_URL", Msg: "invalid connection string " + config.Redact(cfg.DatabaseURL)}}
	}
	defer pool.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		httpapi.NewPoolCollector(pool),
	)
	var draining atomic.Bool
	e := httpapi.New(httpapi.Options{
		Store:        postgres.New(pool),
		Logger:       log,
		MaxBodyBytes: cfg.MaxBodyBytes,
		Registry:     reg,
		Draining:     &draining,
		Version:      version,
	})
	e.Server.ReadTimeout = cfg.HTTPReadTimeout
	e.Server.ReadHeaderTimeout = cfg.HTTPReadTimeout
	e.Server.WriteTimeout = cfg.HTTPWriteTimeout
	e.Server.IdleTimeout = cfg.HTTPIdleTimeout
	e.Server.MaxHeaderBytes = 64 << 10

	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on HTTP_ADDR %s: %w", cfg.HTTPAddr, err)
	}
	log.Info("listening", "addr", ln.Addr().String(), "database", config.Redact(cfg.DatabaseURL),
		"db_max_conns", cfg.DBMaxConns, "version", version)

	errc := make(chan error, 1)
	go func() { errc <- e.Server.Serve(ln) }()
	go func() {
		// Only a log line: readiness is /readyz's job.
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if err := pool.Ping(pctx); err != nil && ctx.Err() == nil {
			log.Warn("database not reachable yet; /readyz answers 503 until it is", "err", err.Error())
		}
	}()

	select {
	case err := <-errc:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}

	// Drain: /readyz turns 503 so the proxy stops sending new requests,
	// while we keep serving whatever still arrives.
	draining.Store(true)
	log.Info("shutdown: draining", "drain_delay", cfg.DrainDelay.String())
	select {
	case <-time.After(cfg.DrainDelay):
	case err := <-errc:
		return fmt.Errorf("http server: %w", err)
	}
	log.Info("shutdown: closing listener, waiting for in-flight requests", "timeout", cfg.ShutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := e.Shutdown(sctx); err != nil {
		log.Warn("shutdown: requests still running at the timeout were cut off", "err", err.Error())
		_ = e.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Warn("shutdown: server", "err", err.Error())
	}
	pool.Close()
	log.Info("shutdown: done")
	return nil
}
