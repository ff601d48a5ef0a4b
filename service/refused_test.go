package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/notes-stack/notes/internal/testing/nginxtest"
	"github.com/notes-stack/notes/nginx"
)

// TestRefusedRequestAnsweredWholeThroughNginx sends, through a real nginx, POSTs that net/http
// refuses before reading their body (a control character in the Idempotency-Key, which nginx
// passes on) with a body behind them, the way the front-door fuzz run found them: every answer
// must reach the client whole, a 400 whose body ends where it should. A service that closes with
// the body unread resets the connection, and nginx cuts the answer off.
func TestRefusedRequestAnsweredWholeThroughNginx(t *testing.T) {
	t.Parallel()
	// The refusal comes before any handler: the database is never asked.
	s := startService(t, map[string]string{"DATABASE_URL": "postgres://notes@127.0.0.1:1/notes"})
	u, err := url.Parse(s.base)
	if err != nil {
		t.Fatal(err)
	}
	h := nginxtest.New(t)
	cfg := h.Config(nginx.Defaults())
	cfg.Upstreams = []string{u.Host}
	cfg.AccessLog = "off"
	cfg.WriteRatePerMinute = 0 // 100 POSTs from one address
	h.Start(cfg)
	front, err := url.Parse(h.HTTPURL("/"))
	if err != nil {
		t.Fatal(err)
	}

	body := `{"title":"t","body":"` + strings.Repeat("b", 6000) + `"}`
	for i, ctl := range []string{"\x01", "\x1f", "\x7f", "\x0b", "\x0c"} {
		for n := range 20 {
			req := fmt.Sprintf("POST /api/notes HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"+
				"Idempotency-Key: k%sv-%d-%d\r\nContent-Length: %d\r\n\r\n%s", front.Host, ctl, i, n, len(body), body)
			status, got, err := roundTrip(front.Host, req)
			if err != nil || status != http.StatusBadRequest {
				t.Fatalf("control character %q, try %d: status %d, body %q, error %v (want a whole 400)", ctl, n, status, got, err)
			}
		}
	}
}

// roundTrip writes raw on a new connection to addr and reads one answer to the end of its body.
func roundTrip(addr, raw string) (int, string, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return 0, "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		return 0, "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}
