// Package testutil holds the small helpers that tests in several packages
// share: a goroutine-safe log buffer, a getenv over a map, free loopback
// ports, polling an HTTP endpoint until it answers a status, and serving
// raw connections (Serve, Pipe).
package testutil

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"
)

// SyncBuffer is a bytes.Buffer that may be written and read from several
// goroutines, for capturing the logs of a running server.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what has been written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Getenv returns a getenv function that reads m.
func Getenv(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Status GETs url and returns the response status, or 0 when there is no
// response (connection refused, timeout).
func Status(url string) int {
	c := http.Client{Timeout: 5 * time.Second}
	res, err := c.Get(url)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode
}

// WaitStatus polls url until it answers want, and fails tb if it does not
// within timeout.
func WaitStatus(tb testing.TB, url string, want int, timeout time.Duration) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := Status(url)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("GET %s = %d, want %d within %s", url, got, want, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
