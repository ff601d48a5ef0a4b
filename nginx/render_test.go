package nginx_test

import (
	"bytes"
	"errors"
	"flag"
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
	"github.com/notes-stack/notes/nginx"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// devConfig is what a developer stack looks like: plain HTTP, the replicas found by their
// network alias through Docker's DNS.
func devConfig() nginx.Config {
	c := nginx.Defaults()
	c.UpstreamDNS, c.UpstreamPort = "notes-dev-app", 8080
	c.Resolver = []string{"127.0.0.11"}
	return c
}

// prodConfig is what a production stack looks like: a domain, certbot certificates, the
// replicas by their alias through Docker's resolver, IPv6 listeners.
func prodConfig() nginx.Config {
	c := nginx.Defaults()
	c.ServerNames = []string{"notes.example.com"}
	c.UpstreamDNS, c.UpstreamPort = "notes-prod-app", 8080
	c.TLS.Mode = nginx.TLSACME
	c.ListenIPv6 = true
	c.Resolver = []string{"127.0.0.11"}
	return c
}

// staticConfig is the static replica list (other callers; reload on a change).
func staticConfig() nginx.Config {
	c := nginx.Defaults()
	c.Upstreams = []string{"notes-dev-app-1a2b3c:8080", "notes-dev-app-4d5e6f:8080"}
	return c
}

// resolveConfig is prod with the nginx >= 1.27.3 form: "server ... resolve" in the upstream.
func resolveConfig() nginx.Config {
	c := prodConfig()
	c.UpstreamResolve = true
	return c
}

// TestGolden renders the dev-like and prod-like configurations and compares them with
// testdata/golden/<name>/; run `go test ./nginx -run TestGolden -update` to rewrite them.
func TestGolden(t *testing.T) {
	for name, cfg := range map[string]nginx.Config{"dev": devConfig(), "prod": prodConfig(), "static": staticConfig(), "resolve": resolveConfig()} {
		t.Run(name, func(t *testing.T) {
			files, err := nginx.Render(cfg)
			if err != nil {
				t.Fatal(err)
			}
			for _, must := range []string{nginx.MainFile, nginx.SiteFile} {
				if _, ok := files[must]; !ok {
					t.Errorf("Render did not return %s", must)
				}
			}
			dir := filepath.Join("testdata", "golden", name)
			if *update {
				os.RemoveAll(dir)
			}
			var names []string
			for rel, got := range files {
				names = append(names, rel)
				p := filepath.Join(dir, filepath.FromSlash(rel))
				if *update {
					if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(p, got, 0o644); err != nil {
						t.Fatal(err)
					}
					continue
				}
				want, err := os.ReadFile(p)
				if err != nil {
					t.Fatalf("%v (run go test ./nginx -run TestGolden -update)", err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("%s differs from %s (run go test ./nginx -run TestGolden -update and review the diff)\n%s", rel, p, firstDiff(got, want))
				}
			}
			// No stale golden files.
			sort.Strings(names)
			filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
				if err == nil && !d.IsDir() {
					rel, _ := filepath.Rel(dir, p)
					if _, ok := files[filepath.ToSlash(rel)]; !ok {
						t.Errorf("golden file %s is not rendered any more (rendered: %v)", p, names)
					}
				}
				return nil
			})
		})
	}
}

func firstDiff(got, want []byte) string {
	g, w := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
	for i := 0; i < len(g) || i < len(w); i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			return "line " + itoa(i+1) + ":\n  got:  " + gl + "\n  want: " + wl
		}
	}
	return ""
}

func itoa(i int) string { return strconv.Itoa(i) }

// TestRenderIsDeterministic guards the infra's trigger: same Config, same bytes.
func TestRenderIsDeterministic(t *testing.T) {
	a, err := nginx.Render(prodConfig())
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		b, _ := nginx.Render(prodConfig())
		for k := range a {
			if !bytes.Equal(a[k], b[k]) {
				t.Fatalf("%s differs between two renders", k)
			}
		}
	}
}

// TestNginxAcceptsVariants runs nginx -t on a table of configurations.
func TestNginxAcceptsVariants(t *testing.T) {
	upstreams := func(n int) []string {
		var u []string
		for i := range n {
			u = append(u, "127.0.0.1:"+itoa(i+1)+"8080")
		}
		return u
	}
	tests := []struct {
		name string
		mod  func(h *nginxtest.Harness, c nginx.Config) nginx.Config
	}{
		{"defaults, TLS off, 1 upstream", func(h *nginxtest.Harness, c nginx.Config) nginx.Config {
			c.Upstreams = upstreams(1)
			return c
		}},
		{"TLS off, 3 upstreams by name", func(h *nginxtest.Harness, c nginx.Config) nginx.Config {
			c.Upstreams = []string{"localhost:8081", "localhost:8082", "127.0.0.1:8083"}
			return c
		}},
		{"TLS provided, 3 upstreams, HSTS preload, no HTTP/2", func(h *nginxtest.Harness, c nginx.Config) nginx.Config {
			c.Upstreams = upstreams(3)
			c.ServerNames = []string{"notes.example.com", "www.notes.example.com"}
			c = h.UseSelfSignedTLS(c, nginx.TLSProvided, "notes.example.com")
			c.TLS.HTTP2 = false
			c.HSTS.Preload = true
			c.RedirectPort = 8443
			return c
		}},
		{"TLS acme, 1 upstream", func(h *nginxtest.Harness, c nginx.Config) nginx.Config {
			c.Upstreams = upstreams(1)
			c.ServerNames = []string{"notes.example.com"}
			return h.UseSelfSignedTLS(c, nginx.TLSACME, "notes.example.com")
		}},
		{"TLS acme with OCSP stapling and resolver", func(h *nginxtest.Harness, c nginx.Config) nginx.Config {
			c.Upstreams = upstreams(2)
			c.ServerNames = []string{"notes.example.com"}
			c = h.UseSelfSignedTLS(c, nginx.TLSACME, "notes.example.com")
			c.TLS.OCSPStapling = true
			c.TLS.TrustedCertificate = c.TLS.CertFile
			c.Resolver = []string{"127.0.0.11", "127.0.0.1:5353"}
			return c
		}},
		{"custom limits", func(h *nginxtest.Harness, c nginx.Config) nginx.Config {
			c.Upstreams = upstreams(3)
			c.WriteRatePerMinute = 30
			c.WriteBurst = 0
			c.ConnLimitPerAddr = 10
			c.LimitZoneSize = 64 << 10
			c.ClientMaxBodySize = 20 << 20
			c.ProxyConnectTimeout = 1500 * time.Millisecond
			c.ProxyReadTimeout = 2 * time.Minute
			c.NextUpstreamTries = 2
			c.UpstreamKeepalive = 8
			c.TrustedProxies = []string{"10.0.0.0/8", "192.168.1.1"}
			c.WorkerProcesses = 1
			return c
		}},
		{"UpstreamDNS that does not resolve, TLS acme", func(h *nginxtest.Harness, c nginx.Config) nginx.Config {
			// nginx -t and start must not need an address for the name (replicas may not
			// exist yet); 127.0.0.1:9 answers no DNS.
			c.UpstreamDNS, c.UpstreamPort = "notes-app.invalid", 8080
			c.Resolver = []string{"127.0.0.1:9"}
			c.ResolverValid = 5 * time.Second
			c.ServerNames = []string{"notes.example.com"}
			return h.UseSelfSignedTLS(c, nginx.TLSACME, "notes.example.com")
		}},
		{"UpstreamDNS, everything optional off", func(h *nginxtest.Harness, c nginx.Config) nginx.Config {
			c.UpstreamDNS, c.UpstreamPort = "app", 8080
			c.Resolver = []string{"127.0.0.11"}
			c.WriteRatePerMinute = 0
			c.ConnLimitPerAddr = 0
			c.UpstreamKeepalive = 0
			c.GzipLevel = 0
			c.AccessLog = "off"
			return c
		}},
		{"everything optional off", func(h *nginxtest.Harness, c nginx.Config) nginx.Config {
			c.Upstreams = upstreams(1)
			c.WriteRatePerMinute = 0
			c.ConnLimitPerAddr = 0
			c.UpstreamKeepalive = 0
			c.GzipLevel = 0
			c.AccessLog = "off"
			c.ErrorLog = "stderr"
			c.ContentSecurityPolicy = ""
			c.ReferrerPolicy = ""
			c.InternalPaths = nil
			c.StaticDir = ""
			c.TLS.SessionCacheSize = 0
			return c
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := nginxtest.New(t)
			cfg := tt.mod(h, h.Config(nginx.Defaults()))
			out, err := h.Test(cfg)
			if err != nil {
				t.Fatalf("nginx -t: %v\n%s", err, out)
			}
			if strings.Contains(out, "[emerg]") {
				t.Fatalf("nginx -t printed an error:\n%s", out)
			}
		})
	}
}

// TestValidate checks that bad configurations are rejected, before nginx sees them, with an
// error naming the field.
func TestValidate(t *testing.T) {
	base := func() nginx.Config {
		c := nginx.Defaults()
		c.Upstreams = []string{"app:8080"}
		return c
	}
	if err := base().Validate(); err != nil {
		t.Fatalf("valid base config rejected: %v", err)
	}
	tests := []struct {
		field string
		mod   func(c *nginx.Config)
	}{
		{"Upstreams", func(c *nginx.Config) { c.Upstreams = nil }},
		{"UpstreamDNS", func(c *nginx.Config) { c.UpstreamDNS, c.UpstreamPort, c.Resolver = "app", 8080, []string{"127.0.0.11"} }},
		{"UpstreamDNS", func(c *nginx.Config) {
			c.Upstreams, c.UpstreamDNS, c.UpstreamPort, c.Resolver = nil, "app;evil", 8080, []string{"127.0.0.11"}
		}},
		{"UpstreamDNS", func(c *nginx.Config) {
			c.Upstreams, c.UpstreamDNS, c.UpstreamPort, c.Resolver = nil, "10.0.0.1", 8080, []string{"127.0.0.11"}
		}},
		{"UpstreamPort", func(c *nginx.Config) { c.Upstreams, c.UpstreamDNS, c.Resolver = nil, "app", []string{"127.0.0.11"} }},
		{"UpstreamPort", func(c *nginx.Config) { c.UpstreamPort = 8080 }},
		{"UpstreamResolve", func(c *nginx.Config) { c.UpstreamResolve = true }},
		{"Resolver", func(c *nginx.Config) { c.Upstreams, c.UpstreamDNS, c.UpstreamPort = nil, "app", 8080 }},
		{"ResolverValid", func(c *nginx.Config) { c.Resolver, c.ResolverValid = []string{"127.0.0.11"}, 500*time.Millisecond }},
		{"ResolverValid", func(c *nginx.Config) { c.Resolver, c.ResolverValid = []string{"127.0.0.11"}, 0 }},
		{"Upstreams[0]", func(c *nginx.Config) { c.Upstreams = []string{"app"} }},
		{"Upstreams[0]", func(c *nginx.Config) { c.Upstreams = []string{"app:0"} }},
		{"Upstreams[0]", func(c *nginx.Config) { c.Upstreams = []string{"app:http"} }},
		{"Upstreams[0]", func(c *nginx.Config) { c.Upstreams = []string{"app;evil:8080"} }},
		{"Upstreams[1]", func(c *nginx.Config) { c.Upstreams = []string{"app:8080", "app:8080"} }},
		{"ServerNames", func(c *nginx.Config) { c.ServerNames = nil }},
		{"ServerNames[1]", func(c *nginx.Config) { c.ServerNames = []string{"ok.example", "bad name"} }},
		{"ListenAddress", func(c *nginx.Config) { c.ListenAddress = "localhost" }},
		{"HTTPPort", func(c *nginx.Config) { c.HTTPPort = 0 }},
		{"HTTPPort", func(c *nginx.Config) { c.HTTPPort = 70000 }},
		{"TLS.Mode", func(c *nginx.Config) { c.TLS.Mode = "on" }},
		{"TLS.CertFile", func(c *nginx.Config) { c.TLS.Mode = nginx.TLSProvided; c.TLS.KeyFile = "/k.pem" }},
		{"TLS.KeyFile", func(c *nginx.Config) { c.TLS.Mode = nginx.TLSProvided; c.TLS.CertFile = "/c.pem" }},
		{"TLS.CertFile", func(c *nginx.Config) {
			c.TLS.Mode = nginx.TLSProvided
			c.TLS.CertFile, c.TLS.KeyFile = "/c.pem; evil", "/k.pem"
		}},
		{"HTTPSPort", func(c *nginx.Config) {
			c.TLS.Mode = nginx.TLSACME
			c.ServerNames = []string{"a.example"}
			c.HTTPSPort = 80
		}},
		{"ServerNames", func(c *nginx.Config) { c.TLS.Mode = nginx.TLSACME }}, // "_" gives no certbot path
		{"ACMEWebroot", func(c *nginx.Config) {
			c.TLS.Mode = nginx.TLSACME
			c.ServerNames = []string{"a.example"}
			c.ACMEWebroot = ""
		}},
		{"Resolver", func(c *nginx.Config) {
			c.TLS.Mode = nginx.TLSACME
			c.ServerNames = []string{"a.example"}
			c.TLS.OCSPStapling = true
		}},
		{"Resolver[0]", func(c *nginx.Config) { c.Resolver = []string{"dns.local"} }},
		{"ClientMaxBodySize", func(c *nginx.Config) { c.ClientMaxBodySize = 0 }},
		{"ProxyReadTimeout", func(c *nginx.Config) { c.ProxyReadTimeout = 0 }},
		{"ProxySendTimeout", func(c *nginx.Config) { c.ProxySendTimeout = time.Microsecond }},
		{"ProxyConnectTimeout", func(c *nginx.Config) { c.ProxyConnectTimeout = 90 * time.Second }},
		{"NextUpstreamTries", func(c *nginx.Config) { c.NextUpstreamTries = 0 }},
		{"WriteRatePerMinute", func(c *nginx.Config) { c.WriteRatePerMinute = -1 }},
		{"AuthRatePerMinute", func(c *nginx.Config) { c.AuthRatePerMinute = -1 }},
		{"AuthBurst", func(c *nginx.Config) { c.AuthBurst = -1 }},
		{"AuthMethods[1]", func(c *nginx.Config) { c.AuthMethods = []string{"PATCH", "GET"} }},
		{"AuthMethods[0]", func(c *nginx.Config) { c.AuthMethods = []string{"PATCH;"} }},
		{"WriteBurst", func(c *nginx.Config) { c.WriteBurst = -5 }},
		{"ConnLimitPerAddr", func(c *nginx.Config) { c.ConnLimitPerAddr = -1 }},
		{"LimitZoneSize", func(c *nginx.Config) { c.LimitZoneSize = 1024 }},
		{"TrustedProxies[0]", func(c *nginx.Config) { c.TrustedProxies = []string{"10.0.0.0/33"} }},
		{"AccessLog", func(c *nginx.Config) { c.AccessLog = "" }},
		{"ErrorLog", func(c *nginx.Config) { c.ErrorLog = "/var/log/a b.log" }},
		{"ErrorLogLevel", func(c *nginx.Config) { c.ErrorLogLevel = "verbose" }},
		{"GzipLevel", func(c *nginx.Config) { c.GzipLevel = 10 }},
		{"ContentSecurityPolicy", func(c *nginx.Config) { c.ContentSecurityPolicy = `default-src "self"` }},
		{"ReferrerPolicy", func(c *nginx.Config) { c.ReferrerPolicy = "$evil" }},
		{"InternalPaths[0]", func(c *nginx.Config) { c.InternalPaths = []string{"metrics"} }},
		{"InternalPaths[1]", func(c *nginx.Config) { c.InternalPaths = []string{"/metrics", "/"} }},
		{"StaticPath", func(c *nginx.Config) { c.StaticPath = "/static" }},
		{"StaticDir", func(c *nginx.Config) { c.StaticDir = "/srv/{static}" }},
		{"User", func(c *nginx.Config) { c.User = "Root!" }},
		{"WorkerConnections", func(c *nginx.Config) { c.WorkerConnections = 0 }},
		{"PIDFile", func(c *nginx.Config) { c.PIDFile = "" }},
		{"MimeTypes", func(c *nginx.Config) { c.MimeTypes = "" }},
		{"KeepaliveTimeout", func(c *nginx.Config) { c.KeepaliveTimeout = -time.Second }},
	}
	for _, tt := range tests {
		c := base()
		tt.mod(&c)
		err := c.Validate()
		if err == nil {
			t.Errorf("%s: Validate accepted an invalid config", tt.field)
			continue
		}
		var fe *nginx.FieldError
		found := false
		for _, e := range unwrapAll(err) {
			if errors.As(e, &fe) && fe.Field == tt.field {
				found = true
			}
		}
		if !found || !strings.Contains(err.Error(), tt.field) {
			t.Errorf("%s: error does not name the field: %v", tt.field, err)
		}
		if _, rerr := nginx.Render(c); rerr == nil {
			t.Errorf("%s: Render accepted a config Validate rejects", tt.field)
		}
	}

	// The zero Config names what must be set.
	err := nginx.Config{}.Validate()
	for _, f := range []string{"ServerNames", "Upstreams", "HTTPPort", "ClientMaxBodySize", "PIDFile"} {
		if err == nil || !strings.Contains(err.Error(), f+":") {
			t.Errorf("zero Config: error does not name %s: %v", f, err)
		}
	}
}

func unwrapAll(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// TestACMECertificateDefaults checks certbot's live paths are used when none are given.
func TestACMECertificateDefaults(t *testing.T) {
	c := prodConfig()
	cert, key := c.CertFiles()
	if cert != "/etc/letsencrypt/live/notes.example.com/fullchain.pem" || key != "/etc/letsencrypt/live/notes.example.com/privkey.pem" {
		t.Fatalf("CertFiles() = %q, %q", cert, key)
	}
}

// TestNginxUpstreamResolve runs nginx -t on the UpstreamResolve form: nginx >= 1.27.3 must
// accept it (a name that does not resolve yet included); older ones reject "resolve", which
// is why it is not the default.
func TestNginxUpstreamResolve(t *testing.T) {
	t.Parallel()
	h := nginxtest.New(t)
	out, err := exec.Command(h.Bin, "-v").CombinedOutput()
	if err != nil {
		t.Fatalf("nginx -v: %v %s", err, out)
	}
	m := regexp.MustCompile(`nginx/(\d+)\.(\d+)\.(\d+)`).FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("cannot read the version from %q", out)
	}
	v := [3]int{}
	for i := range v {
		v[i], _ = strconv.Atoi(m[i+1])
	}
	hasResolve := v[0] > 1 || v[0] == 1 && (v[1] > 27 || v[1] == 27 && v[2] >= 3)

	cfg := h.Config(nginx.Defaults())
	cfg.UpstreamDNS, cfg.UpstreamPort, cfg.UpstreamResolve = "notes-app.invalid", 8080, true
	cfg.Resolver = []string{"127.0.0.1:9"}
	out2, err := h.Test(cfg)
	switch {
	case hasResolve && err != nil:
		t.Fatalf("nginx %s.%s.%s rejects the resolve form: %v\n%s", m[1], m[2], m[3], err, out2)
	case !hasResolve && err == nil:
		t.Fatalf("nginx %s.%s.%s accepted \"server ... resolve\"; update the docs and the default", m[1], m[2], m[3])
	case !hasResolve && !strings.Contains(out2, "resolve"):
		t.Fatalf("nginx %s.%s.%s failed for another reason than resolve:\n%s", m[1], m[2], m[3], out2)
	}
	t.Logf("nginx %s.%s.%s, resolve supported: %v", m[1], m[2], m[3], hasResolve)
}

func TestRedirectHost(t *testing.T) {
	for _, tc := range []struct {
		names []string
		want  string
	}{
		{[]string{"notes.example.com", "www.notes.example.com"}, "notes.example.com"},
		{[]string{"_"}, "$host"},
		{[]string{"*.example.com"}, "$host"},
		{[]string{".example.com"}, "$host"},
		{[]string{"www.example.*"}, "$host"},
	} {
		c := nginx.Defaults()
		c.ServerNames = tc.names
		if got := c.RedirectHost(); got != tc.want {
			t.Errorf("ServerNames %v: RedirectHost %q, want %q", tc.names, got, tc.want)
		}
	}
}
