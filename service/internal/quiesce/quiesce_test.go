package quiesce_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/notes-stack/notes/service/internal/quiesce"
)

func listen(t *testing.T) net.Listener {
	t.Helper()
	if err := quiesce.Available(); err != nil {
		t.Skipf("quiesce is not available here: %v", err)
	}
	ln, err := quiesce.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	return ln
}

// dialQueued connects n times; with nobody accepting, the kernel completes the handshakes and
// queues the connections. Each sends one line.
func dialQueued(t *testing.T, ln net.Listener, n int) []net.Conn {
	t.Helper()
	var conns []net.Conn
	for i := range n {
		c, err := net.DialTimeout("tcp", ln.Addr().String(), 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		if _, err := fmt.Fprintf(c, "hello %d\n", i); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	return conns
}

func TestRefusesNewConnectionsKeepsQueuedOnes(t *testing.T) {
	ln := listen(t)
	conns := dialQueued(t, ln, 8)

	done := make(chan error, 1)
	go func() { done <- quiesce.Listener(ln, quiesce.Options{Timeout: 10 * time.Second}) }()
	// Nothing accepted yet: Listener must still be waiting for the queue.
	select {
	case err := <-done:
		t.Fatalf("returned with 8 connections queued: %v", err)
	case <-time.After(200 * time.Millisecond):
	}

	// A new connection request is dropped now, so the dial times out instead of connecting.
	if c, err := net.DialTimeout("tcp", ln.Addr().String(), 300*time.Millisecond); err == nil {
		_ = c.Close()
		t.Fatal("a new connection was accepted after Listener began")
	} else if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		t.Fatalf("new connection: want a timeout (SYN dropped), got %v", err)
	}

	// The queued connections are all there and work.
	for i := range conns {
		s, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		buf := make([]byte, 64)
		n, err := s.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := string(buf[:n]), fmt.Sprintf("hello %d\n", i); got != want {
			t.Fatalf("queued connection %d sent %q, want %q", i, got, want)
		}
		if _, err := io.WriteString(s, "bye\n"); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	for i, c := range conns {
		buf := make([]byte, 4)
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "bye\n" {
			t.Fatalf("connection %d after the listener closed: %q, %v", i, buf, err)
		}
	}
	// Closed: a connection request is refused at once (what a proxy fails over on).
	if _, err := net.DialTimeout("tcp", ln.Addr().String(), 2*time.Second); !errors.Is(err, syscallECONNREFUSED) {
		t.Fatalf("after close: want connection refused, got %v", err)
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name string
		ln   func(t *testing.T) net.Listener
		want string
	}{
		{"queue never drains", func(t *testing.T) net.Listener {
			ln := listen(t)
			dialQueued(t, ln, 1)
			return ln
		}, "1 connections still queued"},
		{"not TCP", func(t *testing.T) net.Listener {
			ln, err := net.Listen("unix", filepath.Join(t.TempDir(), "s"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = ln.Close() })
			return ln
		}, "not a TCP listener"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := quiesce.Listener(tt.ln(t), quiesce.Options{Timeout: 50 * time.Millisecond})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestMultipathListenerIsRefused(t *testing.T) {
	var lc net.ListenConfig
	lc.SetMultipathTCP(true)
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	err = quiesce.Listener(ln, quiesce.Options{})
	if err == nil {
		t.Skip("the kernel has no Multipath TCP: the listener is plain TCP")
	}
	if !strings.Contains(err.Error(), "Multipath TCP") {
		t.Fatalf("got %v, want it to name Multipath TCP", err)
	}
}

// TestShutdownUnderLoadLosesNothing is the property the package exists for, with the retry
// policy nginx applies to a POST: another server is tried only when the connection could not
// be made, never once the request may have been sent. Two servers take requests on fresh
// connections; one of them is quiesced and shut down while the load goes on. No request may
// fail after it was sent.
func TestShutdownUnderLoadLosesNothing(t *testing.T) {
	rounds := 5
	if testing.Short() {
		rounds = 2
	}
	for round := range rounds {
		stay := serve(t)
		leave := serve(t)
		addrs := []string{stay.addr, leave.addr}

		ctx, cancel := context.WithCancel(context.Background())
		var sent, failed atomic.Int64
		var mu sync.Mutex
		var failures []string
		var wg sync.WaitGroup
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// A dial that times out could not be made either, and is tried on the other
				// server; 2 s, so that a busy machine's slow accept is not taken for one
				// (200 ms failed here at load average 30: a slow dial to the server that
				// stays, then the other one refused).
				client := &http.Client{Transport: &http.Transport{
					DisableKeepAlives: true,
					DialContext:       (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
				}}
				for ctx.Err() == nil {
					first := rand.IntN(2)
					var err error
					for try := range 2 {
						err = post(client, addrs[(first+try)%2])
						var oe *net.OpError
						if err == nil || !errors.As(err, &oe) || oe.Op != "dial" {
							break
						}
					}
					sent.Add(1)
					if err != nil {
						failed.Add(1)
						mu.Lock()
						failures = append(failures, err.Error())
						mu.Unlock()
					}
				}
			}()
		}
		time.Sleep(300 * time.Millisecond)
		if err := leave.stop(); err != nil {
			t.Errorf("round %d: stopping: %v", round, err)
		}
		time.Sleep(200 * time.Millisecond)
		cancel()
		wg.Wait()
		_ = stay.srv.Close()
		if failed.Load() > 0 {
			t.Fatalf("round %d: %d of %d requests failed after they were sent, e.g. %s", round, failed.Load(), sent.Load(), failures[0])
		}
		t.Logf("round %d: %d requests, 0 failed", round, sent.Load())
	}
}

type server struct {
	srv   *http.Server
	ln    net.Listener
	conns *quiesce.Conns
	addr  string
	errc  chan error
}

func serve(t *testing.T) *server {
	t.Helper()
	ln := listen(t)
	conns := quiesce.NewConns()
	s := &server{ln: ln, conns: conns, addr: ln.Addr().String(), errc: make(chan error, 1),
		srv: &http.Server{Handler: conns.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			_, _ = io.WriteString(w, "ok")
		})), ConnState: conns.ConnState, ConnContext: conns.ConnContext}}
	go func() { s.errc <- s.srv.Serve(ln) }()
	t.Cleanup(func() { _ = s.srv.Close() })
	return s
}

// stop is the service's shutdown order: quiesce, then Shutdown (which closes the listener).
func (s *server) stop() error {
	if err := quiesce.Listener(s.ln, quiesce.Options{}); err != nil {
		return err
	}
	if err := s.conns.Wait(5*time.Second, 0); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		return err
	}
	if err := <-s.errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func post(c *http.Client, addr string) error {
	resp, err := c.Post("http://"+addr+"/", "text/plain", strings.NewReader("note"))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 || string(b) != "ok" {
		return fmt.Errorf("%s: %q", resp.Status, b)
	}
	return nil
}

// A connection the server accepted before the shutdown but whose request arrives later is
// answered: Wait holds the shutdown until the request reached its handler. Without it,
// net/http's Shutdown closes such a connection unanswered.
func TestConnsWaitForALateRequest(t *testing.T) {
	s := serve(t)
	c, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	deadline := time.Now().Add(5 * time.Second)
	for s.conns.Pending() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("pending = %d, want the new connection", s.conns.Pending())
		}
		time.Sleep(time.Millisecond)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- s.stop() }()
	time.Sleep(300 * time.Millisecond) // the shutdown is waiting for this connection now
	select {
	case err := <-stopped:
		t.Fatalf("stopped before the pending connection sent its request: %v", err)
	default:
	}
	if _, err := io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nnote"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("the late request got no answer: %v", err)
	}
	if b, _ := io.ReadAll(resp.Body); resp.StatusCode != 200 || string(b) != "ok" {
		t.Fatalf("late request: %s %q", resp.Status, b)
	}
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
}
