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
	"github.com/notes-stack/notes/service/internal/logbuf"
	"github.com/notes-stack/notes/service/internal/postgres"
	"github.com/notes-stack/notes/service/internal/profiling"
	"github.com/notes-stack/notes/service/internal/quiesce"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// maxHeaderBytes bounds request headers; net/http's default is 1 MiB.
const maxHeaderBytes = 64 << 10

// lingerTimeout bounds how long a closed connection still reads what its peer sends (nginx
// sends a request's body right behind its header, so a few round trips are plenty).
const lingerTimeout = time.Second

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
	logw := logbuf.New(stdout, 100*time.Millisecond)
	defer logw.Close()
	log := newLogger(cfg, logw)
	if err := profiling.Start(ctx, getenv(profiling.Env), log); err != nil {
		return err
	}
	switch {
	case cfg.WriteAuth == "none":
		log.Warn("WRITE_AUTH=none: anyone who reaches the service can change and delete notes")
	case len(cfg.APITokens) == 0:
		log.Warn("API_TOKENS_FILE is unset: every request that needs a token is refused with 401", "write_auth", cfg.WriteAuth)
	}

	// The pool connects lazily: the service starts while the database is
	// down and /readyz reports it until it is back.
	pool, err := newPool(ctx, cfg, postgres.PoolOptions{MaxConns: cfg.DBMaxConns, MinConns: cfg.DBMinConns})
	if err != nil {
		return err
	}
	defer pool.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		postgres.NewPoolCollector(pool),
	)
	var draining atomic.Bool
	conns := quiesce.NewConns()
	srv := &http.Server{
		Handler: conns.Handler(httpapi.New(httpapi.Options{
			Store:          postgres.New(pool),
			Logger:         log,
			MaxBodyBytes:   cfg.MaxBodyBytes,
			Registry:       reg,
			Draining:       &draining,
			Version:        version,
			Revision:       cfg.Revision,
			WriteAuth:      httpapi.WriteAuth(cfg.WriteAuth),
			Tokens:         httpapi.NewTokens(cfg.APITokens),
			TrustedProxies: cfg.TrustedProxies,
		})),
		ConnState:         conns.ConnState,
		ConnContext:       conns.ConnContext,
		ReadTimeout:       cfg.HTTPReadTimeout,
		ReadHeaderTimeout: cfg.HTTPReadTimeout,
		WriteTimeout:      cfg.HTTPWriteTimeout,
		IdleTimeout:       cfg.HTTPIdleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		// net/http's own complaints (TLS, accept errors) go to the JSON log.
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}

	ln, err := quiesce.Listen(ctx, "tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on HTTP_ADDR %s: %w", cfg.HTTPAddr, err)
	}
	log.Info("listening", "addr", ln.Addr().String(), "database", config.Redact(cfg.DatabaseURL),
		"db_max_conns", cfg.DBMaxConns, "version", version, "revision", cfg.Revision)

	errc := make(chan error, 1)
	// Lingering: a request net/http refuses before reading its body still gets its whole answer
	// through nginx (quiesce.Lingering says why).
	go func() { errc <- srv.Serve(quiesce.Lingering(ln, lingerTimeout)) }()
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

	// Drain: /readyz turns 503 so a proxy that watches it stops sending new
	// requests, while we keep serving whatever still arrives, each response
	// closing its connection.
	draining.Store(true)
	log.Info("shutdown: draining", "drain_delay", cfg.DrainDelay.String())
	select {
	case <-time.After(cfg.DrainDelay):
	case err := <-errc:
		return fmt.Errorf("http server: %w", err)
	}
	// New connections are refused from here on, those the kernel already
	// accepted are served: closing the listener with some still queued
	// would reset them after a proxy sent its request (docs/service.md).
	if err := quiesce.Listener(ln, quiesce.Options{}); err != nil {
		// Some kernels let only CAP_NET_ADMIN attach the filter to a TCP socket (EPERM in a
		// container). Close the listener now: what the kernel had queued is reset, which a proxy
		// in front retries (nginx does, with an Idempotency-Key), and the wait below still holds
		// for the rest.
		log.Info("shutdown: closing the listener without quiescing it", "err", err.Error())
		if err := ln.Close(); err != nil {
			log.Warn("shutdown: closing the listener", "err", err.Error())
		}
	}
	// Shutdown would close a connection whose request it reads from now on without an answer.
	if err := conns.Wait(5*time.Second, 0); err != nil {
		log.Warn("shutdown: closing connections that sent no request yet", "err", err.Error())
	}
	log.Info("shutdown: closing listener, waiting for in-flight requests", "timeout", cfg.ShutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("shutdown: requests still running at the timeout were cut off", "err", err.Error())
		if err := srv.Close(); err != nil {
			log.Warn("shutdown: closing connections", "err", err.Error())
		}
	}
	// Serve returns ErrServerClosed as soon as Shutdown starts, or net.ErrClosed when the
	// listener was closed above.
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
		log.Warn("shutdown: server", "err", err.Error())
	}
	pool.Close()
	// Nothing is in flight any more and new connections are refused. The
	// process stays this long so its address keeps refusing (a proxy fails
	// over at once) instead of vanishing (a proxy whose DNS answer still
	// names it waits for a connect timeout); the deploy takes it out of the
	// replica alias meanwhile.
	log.Info("shutdown: drained", "linger", cfg.ShutdownLinger.String())
	time.Sleep(cfg.ShutdownLinger)
	log.Info("shutdown: done")
	return nil
}
