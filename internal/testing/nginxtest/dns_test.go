package nginxtest_test

import (
	"context"
	"errors"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/notes-stack/notes/internal/testing/nginxtest"
)

// TestDNS asks the server through Go's own resolver: the addresses set, an empty answer, and
// NXDOMAIN for unknown and deleted names.
func TestDNS(t *testing.T) {
	d := nginxtest.NewDNS(t)
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "udp", d.Addr())
	}}
	lookup := func(name string) ([]string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		addrs, err := r.LookupHost(ctx, name)
		slices.Sort(addrs)
		return addrs, err
	}
	notFound := func(err error) bool {
		var de *net.DNSError
		return errors.As(err, &de) && de.IsNotFound
	}

	d.Set("App.Test", "127.0.0.3", "127.0.0.2")
	if got, err := lookup("app.test"); err != nil || !slices.Equal(got, []string{"127.0.0.2", "127.0.0.3"}) {
		t.Errorf("app.test = %v, %v", got, err)
	}
	if d.Queries("app.test") == 0 {
		t.Errorf("queries not counted")
	}
	d.Set("app.test")
	if got, err := lookup("app.test"); err == nil || len(got) != 0 {
		t.Errorf("empty answer: %v, %v", got, err)
	}
	d.Delete("app.test")
	if _, err := lookup("app.test"); !notFound(err) {
		t.Errorf("deleted name: %v, want not found", err)
	}
	if _, err := lookup("other.test"); !notFound(err) {
		t.Errorf("unknown name: %v, want not found", err)
	}
}

// TestListenSamePort: one port on every address asked for.
func TestListenSamePort(t *testing.T) {
	lns := nginxtest.ListenSamePort(t, "127.0.0.2", "127.0.0.3", "127.0.0.4")
	port := lns[0].Addr().(*net.TCPAddr).Port
	for i, ln := range lns {
		a := ln.Addr().(*net.TCPAddr)
		if a.Port != port || a.IP.String() != "127.0.0."+string(rune('2'+i)) {
			t.Errorf("listener %d on %s, want 127.0.0.%d:%d", i, a, i+2, port)
		}
		ln.Close()
	}
}
