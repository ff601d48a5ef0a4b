package nginx_test

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/notes-stack/notes/internal/testing/nginxtest"
	"github.com/notes-stack/notes/internal/testing/pgtest"
	"github.com/notes-stack/notes/internal/testing/testutil"
	"github.com/notes-stack/notes/nginx"
)

// BenchmarkProxyHop measures the latency nginx adds on loopback: the same GET of a small JSON
// body (/healthz) and of the 50-note list (/api/notes, gzip off on the client side), sent
// sequentially over one keepalive connection, directly to the upstream and through nginx with
// the default configuration. Run:
//
//	go test ./nginx -run '^$' -bench ProxyHop -benchtime 3s
//
// p50/p99 are reported next to ns/op; compare direct vs nginx.
func BenchmarkProxyHop(b *testing.B) {
	up := newBackend(b, "a")
	h := nginxtest.New(b)
	cfg := h.Config(nginx.Defaults())
	cfg.Upstreams = []string{up.addr()}
	cfg.AccessLog = "off" // logging is measured separately below
	h.Start(cfg)

	hLog := nginxtest.New(b)
	cfgLog := hLog.Config(nginx.Defaults())
	cfgLog.Upstreams = []string{up.addr()}
	hLog.Start(cfgLog)

	for _, path := range []string{"/healthz", "/api/notes"} {
		for _, target := range []struct{ name, base string }{
			{"direct", up.srv.URL},
			{"nginx", h.HTTPURL("")},
			{"nginx+accesslog", hLog.HTTPURL("")},
		} {
			b.Run(path[1:]+"/"+target.name, func(b *testing.B) {
				client := &http.Client{Transport: &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 1}}
				url := target.base + path
				get := func() {
					resp, err := client.Get(url)
					if err != nil {
						b.Fatal(err)
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						b.Fatalf("GET %s: %d", url, resp.StatusCode)
					}
				}
				for range 100 { // warm up the connections on both hops
					get()
				}
				lat := make([]time.Duration, 0, b.N)
				b.ResetTimer()
				for b.Loop() {
					t0 := time.Now()
					get()
					lat = append(lat, time.Since(t0))
				}
				b.StopTimer()
				sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
				if n := len(lat); n > 0 {
					b.ReportMetric(float64(lat[n/2].Microseconds()), "p50-us")
					b.ReportMetric(float64(lat[n*99/100].Microseconds()), "p99-us")
				}
			})
		}
	}
}

// BenchmarkUpstreamForm measures what finding the replicas by DNS costs: the same two
// backends (same port on 127.0.0.2 and 127.0.0.3) behind three nginx instances, a static
// upstream list with keepalive (the old form), the same without keepalive, and UpstreamDNS
// (a variable proxy_pass, re-resolved through a test DNS server with valid=1s, no keepalive
// pool). wrk loads each in turn, interleaved for several rounds, so drift on the shared
// machine hits all forms alike. Access logs are off on all three. Run:
//
//	go test ./nginx -run '^$' -bench UpstreamForm -benchtime 1x -wrk.duration 5s -wrk.rounds 3
//
// With -wrk.service BINARY (go build -o /tmp/notes ./service) the backends are two real
// service replicas on a throw-away Postgres (migrated, 10000 notes seeded) instead of the
// in-process stand-ins; -wrk.method POST writes notes. Each round logs requests/s and p99
// per form; the metrics are the medians over rounds.
func BenchmarkUpstreamForm(b *testing.B) {
	wrk, err := exec.LookPath("wrk")
	if err != nil {
		b.Skip("wrk not installed")
	}
	ips := []string{"127.0.0.2", "127.0.0.3"}
	lns := nginxtest.ListenSamePort(b, ips...)
	port := lns[0].Addr().(*net.TCPAddr).Port
	var ups []string
	for _, ip := range ips {
		ups = append(ups, net.JoinHostPort(ip, strconv.Itoa(port)))
	}
	if *benchService == "" {
		for i, ln := range lns {
			newBackendOn(b, ips[i], ln)
		}
	} else {
		for _, ln := range lns {
			ln.Close() // the replicas bind the same addresses
		}
		startReplicas(b, *benchService, ups)
	}
	dns := nginxtest.NewDNS(b)
	dns.Set(appName, "127.0.0.2", "127.0.0.3")

	forms := []struct {
		name string
		mod  func(c *nginx.Config)
	}{
		{"static+keepalive", func(c *nginx.Config) { c.Upstreams = ups }},
		{"static-nokeepalive", func(c *nginx.Config) { c.Upstreams, c.UpstreamKeepalive = ups, 0 }},
		{"dns", func(c *nginx.Config) {
			c.UpstreamDNS, c.UpstreamPort, c.Resolver = appName, port, []string{dns.Addr()}
		}},
	}
	urls := make([]string, len(forms))
	for i, f := range forms {
		h := nginxtest.New(b)
		cfg := h.Config(nginx.Defaults())
		cfg.AccessLog = "off"
		cfg.ConnLimitPerAddr = 0
		cfg.WriteRatePerMinute = 0
		f.mod(&cfg)
		h.Start(cfg)
		urls[i] = h.HTTPURL(*benchPath)
	}
	rps := make([][]float64, len(forms))
	p99 := make([][]float64, len(forms))
	for range b.N {
		for round := range *benchRounds {
			for i, f := range forms {
				args := []string{"-t2", "-c" + strconv.Itoa(*benchConns), "-d" + benchDuration.String(), "--latency"}
				if *benchMethod == "POST" {
					args = append(args, "-s", postScript(b))
				}
				out, err := exec.Command(wrk, append(args, urls[i])...).CombinedOutput()
				if err != nil {
					b.Fatalf("wrk: %v\n%s", err, out)
				}
				r, p, err := parseWrk(string(out))
				if err != nil {
					b.Fatalf("%s: %v\n%s", f.name, err, out)
				}
				// Printed, not logged: the testing package keeps only the first lines of a
				// benchmark's log.
				fmt.Printf("round %d %-19s %8.0f req/s  p99 %6.2f ms\n", round+1, f.name, r, p)
				rps[i], p99[i] = append(rps[i], r), append(p99[i], p)
			}
		}
	}
	for i, f := range forms {
		b.ReportMetric(median(rps[i]), f.name+"-req/s")
		b.ReportMetric(median(p99[i]), f.name+"-p99-ms")
	}
}

var (
	benchDuration = flag.Duration("wrk.duration", 5*time.Second, "BenchmarkUpstreamForm: length of one wrk run")
	benchRounds   = flag.Int("wrk.rounds", 3, "BenchmarkUpstreamForm: interleaved rounds")
	benchConns    = flag.Int("wrk.conns", 32, "BenchmarkUpstreamForm: wrk connections")
	benchPath     = flag.String("wrk.path", "/api/notes", "BenchmarkUpstreamForm: path to request")
	benchMethod   = flag.String("wrk.method", "GET", "BenchmarkUpstreamForm: GET, or POST (a small note)")
	benchService  = flag.String("wrk.service", "", "BenchmarkUpstreamForm: notes binary to run as the two replicas")
)

// postScript writes the wrk script for POST /api/notes and returns its path.
func postScript(b *testing.B) string {
	p := filepath.Join(b.TempDir(), "post.lua")
	lua := "wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.body = '{\"title\":\"bench\",\"body\":\"through nginx\"}'\n"
	if err := os.WriteFile(p, []byte(lua), 0o644); err != nil {
		b.Fatal(err)
	}
	return p
}

// startReplicas runs bin as two service replicas on addrs over a fresh, migrated, seeded
// database and waits until both are ready.
func startReplicas(b *testing.B, bin string, addrs []string) {
	pg := pgtest.NewServer(b)
	dsn := pg.NewDatabase(b)
	env := append(os.Environ(), "DATABASE_URL="+dsn, "LOG_LEVEL=warn")
	for _, args := range [][]string{{"migrate", "up"}, {"seed", "--count", "10000"}} {
		cmd := exec.Command(bin, args...)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("%s %v: %v\n%s", bin, args, err, out)
		}
	}
	for _, addr := range addrs {
		cmd := exec.Command(bin, "serve")
		cmd.Env = append(env, "HTTP_ADDR="+addr, "DRAIN_DELAY=0s")
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() {
			cmd.Process.Signal(os.Interrupt)
			cmd.Wait()
		})
		testutil.WaitStatus(b, "http://"+addr+"/readyz", 200, 20*time.Second)
	}
}

var (
	reWrkRPS = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	reWrkP99 = regexp.MustCompile(`\s99%\s+([0-9.]+)(us|ms|s)\b`)
)

// parseWrk returns requests/s and the p99 latency in ms from wrk --latency output; any
// socket error or non-2xx answer is an error.
func parseWrk(out string) (rps, p99ms float64, err error) {
	if strings.Contains(out, "Non-2xx") || strings.Contains(out, "Socket errors") {
		return 0, 0, errors.New("wrk saw errors")
	}
	m, l := reWrkRPS.FindStringSubmatch(out), reWrkP99.FindStringSubmatch(out)
	if m == nil || l == nil {
		return 0, 0, errors.New("cannot parse wrk output")
	}
	rps, _ = strconv.ParseFloat(m[1], 64)
	p99ms, _ = strconv.ParseFloat(l[1], 64)
	switch l[2] {
	case "us":
		p99ms /= 1000
	case "s":
		p99ms *= 1000
	}
	return rps, p99ms, nil
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}
