package quiesce

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"
)

// Conns tracks, for an http.Server, the connections that may still carry a request the server
// has not started to handle: a new connection until its first request reaches the handler, and
// a keep-alive connection from the moment its next request is read until it reaches the
// handler.
//
// http.Server.Shutdown drops such a request: a connection that reads a request after Shutdown
// began is closed without an answer (net/http's conn.serve checks shuttingDown right after
// reading). A proxy that sent a POST there sees the connection close and cannot retry it. So
// after Listener, Wait until no connection is pending, then Shutdown: what is left is requests
// in their handlers, which Shutdown waits for, and idle connections, which it closes.
//
// Wire all three: Server.Handler = c.Handler(h), Server.ConnState = c.ConnState,
// Server.ConnContext = c.ConnContext.
type Conns struct {
	mu      sync.Mutex
	pending map[net.Conn]struct{}
}

// NewConns returns an empty tracker.
func NewConns() *Conns { return &Conns{pending: make(map[net.Conn]struct{})} }

type connKey struct{}

// ConnContext is for http.Server.ConnContext: it lets Handler find the request's connection.
func (c *Conns) ConnContext(ctx context.Context, conn net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, conn)
}

// ConnState is for http.Server.ConnState.
func (c *Conns) ConnState(conn net.Conn, s http.ConnState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch s {
	case http.StateNew, http.StateActive:
		c.pending[conn] = struct{}{}
	default: // idle, hijacked, closed
		delete(c.pending, conn)
	}
}

// Handler marks the request's connection as handled, then serves it with next.
func (c *Conns) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if conn, ok := r.Context().Value(connKey{}).(net.Conn); ok {
			c.mu.Lock()
			delete(c.pending, conn)
			c.mu.Unlock()
		}
		next.ServeHTTP(w, r)
	})
}

// Pending is the number of connections whose request has not reached the handler yet.
func (c *Conns) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending)
}

// Wait returns once no connection is pending, or with an error after timeout (a client that
// connected and sends nothing keeps its connection pending; Shutdown closes it after 5 s of
// silence anyway).
func (c *Conns) Wait(timeout, poll time.Duration) error {
	if poll <= 0 {
		poll = 2 * time.Millisecond
	}
	deadline := time.Now().Add(timeout)
	for {
		n := c.Pending()
		if n == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("quiesce: %d connections still without a handled request after %s", n, timeout)
		}
		time.Sleep(poll)
	}
}
