package quiesce

import (
	"io"
	"net"
	"sync"
	"time"
)

// lingerBytes bounds what a lingering close reads and discards: more than any request body the
// service takes, far less than a peer could keep sending.
const lingerBytes = 4 << 20

// Lingering returns ln whose TCP connections close the way nginx's lingering_close does: Close
// first ends the sending side (the peer reads everything written, then EOF), then reads and
// discards what the peer still sends for up to d in the background, and only then closes.
//
// A plain close of a socket with unread bytes in its receive buffer makes the kernel send a
// reset instead of a FIN. net/http closes like that whenever it refuses a request before reading
// its body (400 for a control character in a header value, 431, 501): the answer has no
// Content-Length and ends at the close, so the peer, nginx here, sees the reset where the end of
// the answer should be and cuts off what it forwards to its client.
//
// Close returns at once; the connection's descriptor lives at most d longer.
func Lingering(ln net.Listener, d time.Duration) net.Listener {
	return &lingerListener{Listener: ln, d: d}
}

type lingerListener struct {
	net.Listener
	d time.Duration
}

func (l *lingerListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c, nil
	}
	return &lingerConn{TCPConn: tc, d: l.d}, nil
}

// lingerConn embeds *net.TCPConn so net/http still finds CloseWrite, ReadFrom and the deadlines.
type lingerConn struct {
	*net.TCPConn
	d    time.Duration
	once sync.Once
}

func (c *lingerConn) Close() error {
	err := net.ErrClosed
	c.once.Do(func() {
		if err = c.TCPConn.CloseWrite(); err != nil {
			// Not connected any more (the peer reset it): nothing to linger for.
			err = c.TCPConn.Close()
			return
		}
		err = nil
		go func() {
			if c.TCPConn.SetReadDeadline(time.Now().Add(c.d)) == nil {
				_, _ = io.Copy(io.Discard, io.LimitReader(c.TCPConn, lingerBytes))
			}
			_ = c.TCPConn.Close()
		}()
	})
	return err
}
