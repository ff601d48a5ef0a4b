// Package quiesce stops a TCP listener from taking new connections without resetting the ones
// the kernel has already accepted for it.
//
// Closing a listening socket resets every connection still waiting in its accept queue, and
// every handshake in progress. A proxy that had connected and sent its request sees the reset
// after the request went out, and for a POST it may not retry (nginx does not): the client gets
// a 502 although the server never saw the request. Quiesce closes that window: first the
// listener stops answering new connection requests (a socket filter drops pure SYNs, so the
// peer retries its SYN and, once the listener is closed, gets a refusal it can fail over on
// safely), then it waits until the handshakes in progress completed and the server accepted
// everything queued. Conns then waits until every accepted connection's request reached its
// handler (net/http's Shutdown drops a request it reads after it began). Shutting the server
// down after both loses nothing.
package quiesce

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"
)

// Listen listens on a plain TCP socket, which Listener needs. Go listens with Multipath TCP by
// default where the kernel has it, and an MPTCP socket takes no socket filter.
func Listen(ctx context.Context, network, addr string) (net.Listener, error) {
	var lc net.ListenConfig
	lc.SetMultipathTCP(false)
	return lc.Listen(ctx, network, addr)
}

// Options bound the wait.
type Options struct {
	// Settle is how long handshakes already in progress get to complete into the accept queue
	// after new ones are refused: a round trip or two. Default 20ms.
	Settle time.Duration
	// Timeout bounds the wait for the accept queue to empty. Default 2s.
	Timeout time.Duration
	// Poll is the interval between two looks at the queue. Default 2ms.
	Poll time.Duration
}

func (o *Options) defaults() {
	if o.Settle <= 0 {
		o.Settle = 20 * time.Millisecond
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Second
	}
	if o.Poll <= 0 {
		o.Poll = 2 * time.Millisecond
	}
}

// ErrUnsupported is returned where the platform has no way to refuse new connections on an open
// listener; the caller then closes it as before.
var ErrUnsupported = errors.New("quiesce: not supported on this platform")

// Listener makes ln (from Listen) refuse new connections and returns once its accept queue is empty, with
// ln still open: something must keep accepting from it meanwhile (http.Server.Serve does), and
// the caller closes it afterwards (http.Server.Shutdown). It returns an error, leaving ln as
// it was or refusing, when ln is not a TCP listener, the platform cannot do it, or the queue
// did not empty within Timeout.
func Listener(ln net.Listener, o Options) error {
	o.defaults()
	tl, ok := ln.(*net.TCPListener)
	if !ok {
		return fmt.Errorf("quiesce: %T is not a TCP listener", ln)
	}
	rc, err := tl.SyscallConn()
	if err != nil {
		return fmt.Errorf("quiesce: %w", err)
	}
	if err := control(rc, refuseSYN); err != nil {
		return err
	}
	time.Sleep(o.Settle)
	deadline := time.Now().Add(o.Timeout)
	for {
		var n int
		if err := control(rc, func(fd int) error {
			var err error
			n, err = queued(fd)
			return err
		}); err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("quiesce: %d connections still queued after %s", n, o.Timeout)
		}
		time.Sleep(o.Poll)
	}
}

// control runs f on rc's file descriptor and returns f's error or Control's.
func control(rc syscall.RawConn, f func(fd int) error) error {
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = f(int(fd)) }); err != nil {
		return fmt.Errorf("quiesce: %w", err)
	}
	return ferr
}

// Available reports whether Listener can work here: nil, or why not (the platform, or a kernel
// that lets only CAP_NET_ADMIN attach a socket filter to a TCP socket, which makes it fail with
// EPERM in a container).
func Available() error {
	ln, err := Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("quiesce: %w", err)
	}
	defer ln.Close()
	rc, err := ln.(*net.TCPListener).SyscallConn()
	if err != nil {
		return fmt.Errorf("quiesce: %w", err)
	}
	return control(rc, refuseSYN)
}
