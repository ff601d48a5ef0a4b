package nginx_test

import (
	"io"
	"net/http"
	"sort"
	"testing"
	"time"

	"github.com/notes-stack/notes/internal/testing/nginxtest"
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
