package testutil

import (
	"io"
	"net"
	"testing"
	"time"
)

// A front made of Serve and Pipe passes bytes both ways and the client's half-close on to the
// backend (an echo server that answers once its input ends); a handler blocked on a silent
// connection ends with the test.
func TestServePipe(t *testing.T) {
	listen := func() net.Listener {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		return ln
	}
	echo := listen()
	Serve(t, echo, func(c net.Conn) {
		b, _ := io.ReadAll(c) // until the half-close
		_, _ = c.Write(b)
	})
	front := listen()
	Serve(t, front, func(c net.Conn) {
		b, err := net.Dial("tcp", echo.Addr().String())
		if err != nil {
			return
		}
		defer b.Close()
		Pipe(c, b)
	})
	// The client of the silent server closes after Serve's cleanup (cleanups run last first):
	// only Serve closing its side ends the handler.
	silent := listen()
	var client net.Conn
	t.Cleanup(func() {
		if client != nil {
			client.Close()
		}
	})
	Serve(t, silent, func(c net.Conn) { _, _ = io.Copy(io.Discard, c) })
	client, err := net.Dial("tcp", silent.Addr().String())
	if err != nil {
		t.Fatal(err)
	}

	c, err := net.Dial("tcp", front.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "hello" {
		t.Fatalf("through the front: %q, %v; want the echo of hello and EOF", got, err)
	}
}
