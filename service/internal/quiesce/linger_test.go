package quiesce_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/notes-stack/notes/service/internal/quiesce"
)

// serveLingering runs an http.Server on ln (wrapped by wrap) until the test ends.
func serveLingering(t *testing.T, wrap func(net.Listener) net.Listener) (addr string, srv *http.Server) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, "ok")
	})}
	go func() { _ = srv.Serve(wrap(ln)) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String(), srv
}

// TestLingeringCloseEndsRefusedAnswer sends what net/http refuses before reading the body (a
// control character in a header value) followed by a body, as nginx forwards it, and reads the
// answer to its end. A plain close resets the connection with the body unread, so the reader
// gets ECONNRESET where the answer should end; a lingering close ends it with a FIN.
func TestLingeringCloseEndsRefusedAnswer(t *testing.T) {
	body := strings.Repeat("b", 64<<10)
	req := "POST /api/notes HTTP/1.1\r\nHost: notes\r\nX-Request-ID: a\x01b\r\nContent-Type: application/json\r\n" +
		"Content-Length: 65536\r\n\r\n" + body
	tests := []struct {
		name      string
		wrap      func(net.Listener) net.Listener
		wantReset bool
	}{
		{"plain close", func(ln net.Listener) net.Listener { return ln }, true},
		{"lingering close", func(ln net.Listener) net.Listener { return quiesce.Lingering(ln, time.Second) }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, _ := serveLingering(t, tt.wrap)
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			werr := make(chan error, 1)
			go func() { _, err := io.WriteString(c, req); werr <- err }()
			got, err := io.ReadAll(c)
			if !strings.HasPrefix(string(got), "HTTP/1.1 400 Bad Request") {
				t.Errorf("answer %q, want a 400", got)
			}
			reset := errors.Is(err, syscall.ECONNRESET)
			if err != nil && !reset {
				t.Fatalf("reading the answer: %v", err)
			}
			if reset != tt.wantReset {
				t.Errorf("connection reset before the end of the answer: %v, want %v (answer %q)", reset, tt.wantReset, got)
			}
			if !tt.wantReset && !strings.HasSuffix(string(got), "400 Bad Request") {
				t.Errorf("answer %q does not end with its body", got)
			}
			<-werr // the server may have closed before the whole body went out; either is fine
		})
	}
}

// TestLingeringKeepsServing: keep-alive requests go through a lingering listener as before, and
// Shutdown does not wait for the lingering.
func TestLingeringKeepsServing(t *testing.T) {
	addr, srv := serveLingering(t, func(ln net.Listener) net.Listener { return quiesce.Lingering(ln, 5*time.Second) })
	client := &http.Client{Timeout: 5 * time.Second}
	for i := range 3 {
		resp, err := client.Post("http://"+addr+"/", "text/plain", strings.NewReader("x"))
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(b) != "ok" {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, b)
		}
	}
	// The client keeps its idle connection open: Shutdown closes it on our side and must not
	// wait the 5 s the lingering may take.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown after %v: %v", time.Since(start), err)
	}
	client.CloseIdleConnections()
}
