package nginxtest

import (
	"errors"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// DNS is a tiny authoritative DNS server on a loopback UDP port that the test controls: it
// answers A queries for the names given to Set (TTL 0; nginx's resolver valid= decides the
// caching), NOERROR without records for a name set to no addresses and for other types,
// and NXDOMAIN for every other name. It is the stand-in for Docker's embedded DNS.
//
//	dns := nginxtest.NewDNS(t)
//	dns.Set("app", "127.0.0.2", "127.0.0.3")
//	cfg.UpstreamDNS, cfg.UpstreamPort, cfg.Resolver = "app", port, []string{dns.Addr()}
type DNS struct {
	conn *net.UDPConn

	mu      sync.Mutex
	records map[string][]netip.Addr // by lower-case fully qualified name
	queries map[string]int
}

// NewDNS starts the server; it stops when the test ends.
func NewDNS(t testing.TB) *DNS {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatalf("nginxtest: DNS listen: %v", err)
	}
	d := &DNS{conn: conn, records: map[string][]netip.Addr{}, queries: map[string]int{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.serve(t)
	}()
	t.Cleanup(func() {
		conn.Close()
		<-done
	})
	return d
}

// Addr is the server's ip:port, for nginx.Config.Resolver.
func (d *DNS) Addr() string { return d.conn.LocalAddr().String() }

// Set makes name resolve to addrs (IPv4); no addrs gives an empty NOERROR answer.
func (d *DNS) Set(name string, addrs ...string) {
	var as []netip.Addr
	for _, a := range addrs {
		as = append(as, netip.MustParseAddr(a))
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.records[fqdn(name)] = as
}

// Delete makes name NXDOMAIN.
func (d *DNS) Delete(name string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.records, fqdn(name))
}

// Queries is how many queries for name arrived so far.
func (d *DNS) Queries(name string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.queries[fqdn(name)]
}

func fqdn(name string) string { return strings.ToLower(strings.TrimSuffix(name, ".")) + "." }

func (d *DNS) serve(t testing.TB) {
	buf := make([]byte, 1500)
	for {
		n, from, err := d.conn.ReadFromUDP(buf)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				t.Errorf("nginxtest: DNS read: %v", err)
			}
			return
		}
		resp, err := d.answer(buf[:n])
		if err != nil {
			t.Logf("nginxtest: DNS: ignoring a bad query: %v", err)
			continue
		}
		if _, err := d.conn.WriteToUDP(resp, from); err != nil && !errors.Is(err, net.ErrClosed) {
			t.Errorf("nginxtest: DNS write: %v", err)
		}
	}
}

func (d *DNS) answer(query []byte) ([]byte, error) {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil {
		return nil, err
	}
	q, err := p.Question()
	if err != nil {
		return nil, err
	}
	name := strings.ToLower(q.Name.String())
	d.mu.Lock()
	addrs, known := d.records[name]
	d.queries[name]++
	d.mu.Unlock()

	rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired}
	if !known {
		rh.RCode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, rh)
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	if err := b.Question(q); err != nil {
		return nil, err
	}
	if err := b.StartAnswers(); err != nil {
		return nil, err
	}
	if q.Type == dnsmessage.TypeA && q.Class == dnsmessage.ClassINET {
		for _, a := range addrs {
			rr := dnsmessage.ResourceHeader{Name: q.Name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET, TTL: 0}
			if err := b.AResource(rr, dnsmessage.AResource{A: a.As4()}); err != nil {
				return nil, err
			}
		}
	}
	return b.Finish()
}

// ListenSamePort opens TCP listeners on one port of each of the loopback addresses ips
// (127.0.0.2, 127.0.0.3, ...: all of 127/8 is local on Linux), the way replicas behind one DNS
// name all listen on 8080. It retries with another port when one is taken on some address.
// The listeners are closed at cleanup unless the caller closed them (or handed them to a
// server that did).
func ListenSamePort(t testing.TB, ips ...string) []net.Listener {
	t.Helper()
	for attempt := 0; attempt < 20; attempt++ {
		first, err := net.Listen("tcp4", net.JoinHostPort(ips[0], "0"))
		if err != nil {
			t.Fatalf("nginxtest: listen on %s: %v", ips[0], err)
		}
		port := first.Addr().(*net.TCPAddr).Port
		lns := []net.Listener{first}
		for _, ip := range ips[1:] {
			ln, err := net.Listen("tcp4", net.JoinHostPort(ip, strconv.Itoa(port)))
			if err != nil {
				break
			}
			lns = append(lns, ln)
		}
		if len(lns) == len(ips) {
			for _, ln := range lns {
				t.Cleanup(func() { ln.Close() })
			}
			return lns
		}
		for _, ln := range lns {
			ln.Close()
		}
	}
	t.Fatalf("nginxtest: no port free on all of %v", ips)
	return nil
}
