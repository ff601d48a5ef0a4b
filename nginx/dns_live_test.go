package nginx_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/notes-stack/notes/internal/testing/nginxtest"
	"github.com/notes-stack/notes/nginx"
)

// upstreamForm is how nginx finds the replicas: a static list or one DNS name.
type upstreamForm string

const (
	formStatic upstreamForm = "static"
	formDNS    upstreamForm = "dns"
)

// forEachForm runs test once with each form, in parallel.
func forEachForm(t *testing.T, test func(t *testing.T, form upstreamForm)) {
	t.Parallel()
	for _, form := range []upstreamForm{formStatic, formDNS} {
		t.Run(string(form), func(t *testing.T) {
			t.Parallel()
			test(t, form)
		})
	}
}

// appName is the replicas' DNS name in the tests (their network alias in Docker).
const appName = "notes-app.test"

// dnsStack is nginx in front of backends that share one port on distinct loopback
// addresses, found through a DNS server the test controls.
type dnsStack struct {
	h    *nginxtest.Harness
	dns  *nginxtest.DNS
	bs   []*backend
	ips  []string // bs[i] listens on ips[i]
	port int
}

// startDNS starts len(names) backends on 127.0.0.2, 127.0.0.3, ... (one port), publishes all of
// them under appName and starts nginx with UpstreamDNS. extra addresses (same port, nothing
// listening) are reserved for tests that need a refusing replica.
func startDNS(t *testing.T, mod func(h *nginxtest.Harness, c nginx.Config) nginx.Config, publish bool, names ...string) *dnsStack {
	t.Helper()
	s := &dnsStack{dns: nginxtest.NewDNS(t)}
	for i := range names {
		s.ips = append(s.ips, "127.0.0."+strconv.Itoa(i+2))
	}
	lns := nginxtest.ListenSamePort(t, s.ips...)
	s.port = lns[0].Addr().(*net.TCPAddr).Port
	for i, n := range names {
		s.bs = append(s.bs, newBackendOn(t, n, lns[i]))
	}
	if publish {
		s.dns.Set(appName, s.ips...)
	}
	s.h = nginxtest.New(t)
	cfg := s.h.Config(nginx.Defaults())
	cfg.UpstreamDNS, cfg.UpstreamPort = appName, s.port
	cfg.Resolver = []string{s.dns.Addr()}
	if mod != nil {
		cfg = mod(s.h, cfg)
	}
	s.h.Start(cfg)
	return s
}

// startForm starts nginx in front of backends named names in the given form.
func startForm(t *testing.T, form upstreamForm, mod func(h *nginxtest.Harness, c nginx.Config) nginx.Config, names ...string) (*nginxtest.Harness, []*backend) {
	t.Helper()
	if form == formDNS {
		s := startDNS(t, mod, true, names...)
		return s.h, s.bs
	}
	var bs []*backend
	for _, n := range names {
		bs = append(bs, newBackend(t, n))
	}
	return start(t, mod, bs...), bs
}

// load sends GETs and POSTs from workers goroutines until stop is called and counts
// failures (transport errors and any status but 200/201).
type load struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	failures   []string
	cancel     context.CancelFunc
	wg         sync.WaitGroup
}

func startLoad(t *testing.T, url string, workers int) *load {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{cancel: cancel}
	c := newClient()
	for w := range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				method, body := "GET", ""
				if (i+w)%4 == 0 {
					method, body = "POST", `{"title":"t"}`
				}
				req, _ := http.NewRequest(method, url, strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				resp, err := c.Do(req)
				if err != nil {
					l.fail(err.Error())
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 && resp.StatusCode != 201 {
					l.fail(fmt.Sprintf("%s %d", method, resp.StatusCode))
					continue
				}
				l.ok.Add(1)
			}
		}()
	}
	t.Cleanup(l.stop)
	return l
}

func (l *load) fail(s string) {
	l.failed.Add(1)
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.failures) < 10 {
		l.failures = append(l.failures, s)
	}
}

func (l *load) stop() {
	l.cancel()
	l.wg.Wait()
}

// TestLiveDNSSpread: requests go to every address of the name, and the access log names the
// address that served each one.
func TestLiveDNSSpread(t *testing.T) {
	t.Parallel()
	s := startDNS(t, nil, true, "a", "b")
	c := newClient()
	revisions := map[string]int{}
	for range 60 {
		r := do(t, c, "GET", s.h.HTTPURL("/api/notes"), nil)
		if r.status != 200 {
			t.Fatalf("GET /api/notes: %d %s", r.status, r.body)
		}
		revisions[r.header.Get("X-Notes-Revision")]++
	}
	a, b := s.bs[0].hits.Load(), s.bs[1].hits.Load()
	if a < 5 || b < 5 || a+b != 60 {
		t.Fatalf("requests not spread over both addresses: a=%d b=%d", a, b)
	}
	// The replicas' revision header reaches the client (what a deploy's check asks for).
	if revisions["rev-a"] != int(a) || revisions["rev-b"] != int(b) {
		t.Errorf("X-Notes-Revision seen %v, backends served a=%d b=%d", revisions, a, b)
	}
	for _, ip := range s.ips {
		addr := fmt.Sprintf(`"upstream_addr":"%s:%d"`, ip, s.port)
		if _, ok := s.h.WaitAccessLog(addr); !ok {
			t.Errorf("access log has no %s", addr)
		}
	}
	if s.dns.Queries(appName) == 0 {
		t.Errorf("nginx never asked the DNS server")
	}
}

// TestLiveDNSRemoveUnderLoad: when the name stops returning an address, nginx sends nothing
// more to it once its cache (ResolverValid) has expired, and no request fails meanwhile.
func TestLiveDNSRemoveUnderLoad(t *testing.T) {
	t.Parallel()
	s := startDNS(t, func(h *nginxtest.Harness, c nginx.Config) nginx.Config {
		c.WriteRatePerMinute, c.ConnLimitPerAddr = 0, 0
		return c
	}, true, "a", "b")
	kept, removed := s.bs[0], s.bs[1]
	l := startLoad(t, s.h.HTTPURL("/api/notes"), 4)
	time.Sleep(time.Second)
	if removed.hits.Load() == 0 {
		t.Fatalf("b got nothing before the change (a=%d)", kept.hits.Load())
	}
	s.dns.Set(appName, s.ips[0])
	// valid=1s, counted in whole seconds by nginx, per worker: 3s is past it.
	time.Sleep(3 * time.Second)
	afterValid, keptBefore := removed.hits.Load(), kept.hits.Load()
	time.Sleep(1500 * time.Millisecond)
	l.stop()
	if got := removed.hits.Load() - afterValid; got != 0 {
		t.Errorf("removed address got %d requests after the DNS cache expired", got)
	}
	if kept.hits.Load() == keptBefore {
		t.Errorf("kept address got no requests after the change")
	}
	if n := l.failed.Load(); n != 0 {
		t.Errorf("%d of %d requests failed during the change: %v", n, n+l.ok.Load(), l.failures)
	}
	t.Logf("%d requests, 0 failed; removed address served %d before its cache expired", l.ok.Load(), afterValid)
}

// TestLiveDNSFailover: an address that refuses connections is skipped for reads and writes
// (a connection that was never made is safe to retry, even for POST).
func TestLiveDNSFailover(t *testing.T) {
	t.Parallel()
	s := startDNS(t, nil, true, "a", "dead")
	s.bs[1].srv.Close() // 127.0.0.3:port now refuses
	c := newClient()
	for i := range 40 {
		method, body := "GET", ""
		if i%4 == 0 {
			method, body = "POST", `{"title":"x"}`
		}
		if r := do(t, c, method, s.h.HTTPURL("/api/notes"), strings.NewReader(body), "Content-Type", "application/json"); r.status != 200 && r.status != 201 {
			t.Fatalf("%s %d with one address refusing: %d %s", method, i, r.status, r.body)
		}
	}
	if got := s.bs[0].hits.Load(); got != 40 {
		t.Errorf("live address served %d of 40", got)
	}
	if !strings.Contains(s.h.ErrorLog(), "Connection refused") {
		t.Errorf("error log does not show the refused connect:\n%s", s.h.ErrorLog())
	}

	// Every address refuses: the 502 problem, for reads and writes.
	s.bs[0].srv.Close()
	for _, method := range []string{"GET", "POST"} {
		r := do(t, c, method, s.h.HTTPURL("/api/notes"), strings.NewReader(`{"title":"x"}`), "Content-Type", "application/json")
		checkProblem(t, method+" with every address refusing", r, 502)
		checkSecurityHeaders(t, method+" with every address refusing", r, false)
	}
}

// TestLiveDNSNoAddressYet: nginx starts while the name does not resolve (NXDOMAIN) or has no
// address, answers 502 problem+json meanwhile, and serves once the name has an address.
func TestLiveDNSNoAddressYet(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		setup func(d *nginxtest.DNS)
	}{
		{"NXDOMAIN", func(d *nginxtest.DNS) {}},
		{"no addresses", func(d *nginxtest.DNS) { d.Set(appName) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dns := nginxtest.NewDNS(t)
			tc.setup(dns)
			lns := nginxtest.ListenSamePort(t, "127.0.0.2")
			b := newBackendOn(t, "a", lns[0])
			h := nginxtest.New(t)
			cfg := h.Config(nginx.Defaults())
			cfg.UpstreamDNS, cfg.UpstreamPort = appName, lns[0].Addr().(*net.TCPAddr).Port
			cfg.Resolver = []string{dns.Addr()}
			h.Start(cfg)
			c := newClient()
			r := do(t, c, "GET", h.HTTPURL("/api/notes"), nil)
			checkProblem(t, "no address", r, 502)
			checkSecurityHeaders(t, "no address", r, false)
			if dns.Queries(appName) == 0 {
				t.Errorf("nginx did not ask the DNS server")
			}

			dns.Set(appName, "127.0.0.2")
			deadline := time.Now().Add(10 * time.Second)
			for {
				r := do(t, c, "GET", h.HTTPURL("/api/notes"), nil)
				if r.status == 200 {
					break
				}
				if r.status != 502 || time.Now().After(deadline) {
					t.Fatalf("after the name got an address: %d %s", r.status, r.body)
				}
				time.Sleep(100 * time.Millisecond)
			}
			if b.hits.Load() == 0 {
				t.Errorf("backend got nothing")
			}
		})
	}
}
