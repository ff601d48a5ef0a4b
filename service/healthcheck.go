package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

func runHealthcheck(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	url := fs.String("url", "", "URL to GET (default http://127.0.0.1:<port of HTTP_ADDR>/healthz)")
	timeout := fs.Duration("timeout", 3*time.Second, "request timeout")
	if err := parseFlags(fs, args, stderr, "Usage: notes healthcheck [--url URL]\n\nGETs the service's /healthz; exit status 0 when it answers 200, else 1.\n\n"); err != nil {
		return helpOK(err)
	}
	if *url == "" {
		// Only HTTP_ADDR matters here; do not require a valid database config.
		addr := getenv("HTTP_ADDR")
		if addr == "" {
			addr = ":8080"
		}
		_, port, err := net.SplitHostPort(addr)
		if err != nil {
			return usageErrorf("HTTP_ADDR: %q is not host:port", addr)
		}
		*url = "http://" + net.JoinHostPort("127.0.0.1", port) + "/healthz"
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *url, nil)
	if err != nil {
		return usageErrorf("--url: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusOK {
		return errors.New("healthcheck: " + resp.Status)
	}
	fmt.Fprintln(stdout, "ok")
	return nil
}
