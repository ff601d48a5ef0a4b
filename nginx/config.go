// Package nginx renders the configuration of the nginx front door of the notes service.
//
// Start from Defaults, set at least Upstreams (and ServerNames and TLS for a public site), check
// the result with Validate and hand the output of Render to nginx: the map keys are paths relative
// to the configuration directory (/etc/nginx in the container). The rendered configuration is
// prefix independent: every path it uses is a Config field, and relative paths (such as the
// default MimeTypes) resolve against the configuration directory, so the same bytes run in the
// container and in tests under a temporary prefix.
//
// The output works on nginx 1.22 (Debian nginx-light, the CI and stand-in image) and on the
// official nginx 1.27 image: it uses only the core, ssl, http2, gzip, realip, map, limit_req,
// limit_conn and upstream keepalive modules. The replicas are either a static list (Upstreams,
// resolved when the configuration is (re)loaded) or one DNS name (UpstreamDNS) that nginx
// resolves at run time through Resolver, so replicas come and go without a reload.
package nginx

import (
	"errors"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// TLSMode says how the HTTPS server gets its certificate.
type TLSMode string

const (
	// TLSOff serves the application over plain HTTP on HTTPPort. The zero value means TLSOff.
	TLSOff TLSMode = "off"
	// TLSProvided serves HTTPS on HTTPSPort with TLS.CertFile and TLS.KeyFile written by the
	// installer (for example from Pulumi secrets). Port HTTPPort redirects to HTTPS.
	TLSProvided TLSMode = "provided"
	// TLSACME is TLSProvided plus an ACME HTTP-01 webroot: port HTTPPort serves
	// /.well-known/acme-challenge/ from ACMEWebroot (for certbot --webroot or any ACME client)
	// and redirects everything else to HTTPS. Certificate paths default to certbot's
	// /etc/letsencrypt/live/<first server name>/{fullchain,privkey}.pem.
	TLSACME TLSMode = "acme"
)

// TLS configures the HTTPS server. It is used when Mode is TLSProvided or TLSACME.
type TLS struct {
	Mode TLSMode
	// CertFile is the certificate chain (leaf first) in PEM; KeyFile its private key.
	// Required for TLSProvided; for TLSACME they default to certbot's live paths.
	CertFile string
	KeyFile  string
	// HTTP2 enables HTTP/2 on the TLS listener ("listen ... ssl http2", which nginx >= 1.25.1
	// accepts with a deprecation warning; the "http2" directive does not exist in 1.22).
	HTTP2 bool
	// OCSPStapling enables ssl_stapling (needs Resolver; Let's Encrypt no longer runs OCSP).
	OCSPStapling bool
	// TrustedCertificate is the CA chain used to verify stapled OCSP responses (optional).
	TrustedCertificate string
	// SessionCacheSize is the size in bytes of the shared TLS session cache; 0 disables it.
	SessionCacheSize int64
	// SessionTimeout is how long a TLS session may be resumed.
	SessionTimeout time.Duration
}

// HSTS configures Strict-Transport-Security, sent only when TLS is on.
type HSTS struct {
	// MaxAge of the policy; 0 disables the header.
	MaxAge            time.Duration
	IncludeSubDomains bool
	Preload           bool
}

// Config is everything that varies between deployments of the front door. The zero value of an
// optional feature turns it off; Defaults returns a production-grade configuration.
type Config struct {
	// ServerNames for server_name; "_" (the default) matches any host.
	ServerNames []string
	// Upstreams are the application replicas as host:port (in Docker: container name and 8080).
	// Host names are resolved when nginx loads the configuration, so reload after a change.
	// Set either Upstreams or UpstreamDNS.
	Upstreams []string
	// UpstreamDNS names all replicas by one DNS name (in Docker: their network alias) that
	// nginx resolves at run time through Resolver, caching answers for ResolverValid. Requests
	// are spread over every address of the answer and fail over to another one on connect
	// errors (proxy_next_upstream); a replica that leaves the name gets no new requests once
	// the cache expires. nginx starts while the name has no address and answers 502 until it
	// has. Requires Resolver and UpstreamPort; excludes Upstreams.
	UpstreamDNS string
	// UpstreamPort is the replicas' port with UpstreamDNS (8080).
	UpstreamPort int
	// UpstreamResolve chooses how UpstreamDNS is rendered. false (the default, for nginx 1.22,
	// the stand-in and Debian's): a variable in proxy_pass, which resolves per request but
	// has no upstream keepalive and no max_fails memory across requests. true (nginx >=
	// 1.27.3 only): "server NAME:PORT resolve" in an upstream block with a shared zone, which
	// keeps the keepalive pool and max_fails. docs/nginx.md has the measured difference.
	// The variable form ignores UpstreamKeepalive* and UpstreamMaxFails/UpstreamFailTimeout.
	UpstreamResolve bool

	// ListenAddress is the IP address to listen on; empty means all IPv4 addresses.
	ListenAddress string
	// ListenIPv6 adds listeners on [::] (ignored when ListenAddress is set).
	ListenIPv6 bool
	// HTTPPort serves the application (TLS off) or the ACME webroot and the redirect (TLS on).
	HTTPPort int
	// HTTPSPort serves the application when TLS is on.
	HTTPSPort int
	// RedirectPort is the HTTPS port written into redirects (to ServerNames[0], see
	// RedirectHost); 0 means HTTPSPort. Set it when the
	// container port is published on a different host port.
	RedirectPort int

	TLS  TLS
	HSTS HSTS

	// ClientMaxBodySize is the largest accepted request body in bytes (413 above).
	ClientMaxBodySize int64
	// ProxyConnectTimeout, ProxySendTimeout and ProxyReadTimeout bound the upstream hop. A
	// timeout is a connection error (proxy_next_upstream timeout): the request goes to another
	// replica, so they are how long a request waits for a replica that is gone without a word
	// (its host died: no RST, no FIN). Hence short: a connect on the hosts' network takes well
	// under a millisecond (2s leaves room for one lost SYN, whose first retransmit is at 1s),
	// and the API's slowest answers are about 100 ms at p99 (docs/service.md, the list at
	// scale), so a 10s read timeout is 100 times that and still leaves a retry within
	// NextUpstreamTimeout and a client's usual 15-30s timeout.
	ProxyConnectTimeout time.Duration
	ProxySendTimeout    time.Duration
	ProxyReadTimeout    time.Duration
	// UpstreamKeepalive is the number of idle keepalive connections per worker to the upstreams.
	UpstreamKeepalive int
	// UpstreamKeepaliveTimeout closes idle upstream connections; keep it below the service's
	// HTTP_IDLE_TIMEOUT (120s).
	UpstreamKeepaliveTimeout time.Duration
	// UpstreamMaxFails and UpstreamFailTimeout: after MaxFails failures within FailTimeout a
	// replica is skipped for FailTimeout.
	UpstreamMaxFails    int
	UpstreamFailTimeout time.Duration
	// NextUpstreamTries bounds the replicas tried for one request after a connection error or
	// timeout (never after a response such as the service's 503). Every method is retried: a
	// POST carries an Idempotency-Key (docs/nginx.md).
	NextUpstreamTries   int
	NextUpstreamTimeout time.Duration

	// WriteRatePerMinute limits POST, PUT, PATCH and DELETE per client address (429 above,
	// after WriteBurst); 0 disables the limit. 600 is 10 requests per second.
	WriteRatePerMinute int
	WriteBurst         int
	// AuthRatePerMinute limits, per client address, the requests that need the service's API
	// token (AuthMethods), on top of the write limit: every such attempt counts, since nginx
	// cannot tell a wrong token from a good one before the service answered, so this is what
	// bounds token guessing. 0 disables it.
	AuthRatePerMinute int
	AuthBurst         int
	// AuthMethods are the methods that need a token (the service's WRITE_AUTH): PATCH and
	// DELETE, POST too with "all".
	AuthMethods []string
	// ConnLimitPerAddr limits concurrent connections per client address (429 above); 0 disables.
	ConnLimitPerAddr int
	// LimitZoneSize is the shared memory, in bytes, of each limit zone (1 MiB ≈ 16k addresses).
	LimitZoneSize int64
	// TrustedProxies are CIDRs of load balancers in front of nginx whose X-Forwarded-For is
	// trusted for the client address (realip); empty means the peer address is the client.
	TrustedProxies []string

	// Resolver lists DNS servers for run-time resolution (UpstreamDNS, OCSP); in Docker
	// 127.0.0.11. Names in Upstreams are resolved at load time by the system resolver
	// regardless.
	Resolver []string
	// ResolverValid is how long nginx caches a DNS answer, overriding its TTL: the longest
	// a replica that left UpstreamDNS may still get new requests (default 1s).
	ResolverValid time.Duration

	// AccessLog is the JSON access log path ("/dev/stdout"); "off" disables it.
	AccessLog string
	// ErrorLog is the error log path ("/dev/stderr", or "stderr") and ErrorLogLevel its level.
	ErrorLog      string
	ErrorLogLevel string

	// GzipLevel is the gzip compression level 1..9; 0 turns gzip off.
	GzipLevel int
	// GzipMinLength is the smallest response, in bytes, that is compressed.
	GzipMinLength int

	// ContentSecurityPolicy and ReferrerPolicy are sent on every response; empty omits them.
	// X-Content-Type-Options nosniff and X-Frame-Options DENY are always sent.
	ContentSecurityPolicy string
	ReferrerPolicy        string

	// InternalPaths answer 404 from nginx: "/metrics" blocks /metrics and /metrics/...;
	// a path ending in "/" blocks that prefix.
	InternalPaths []string

	// StaticPath (for example "/static/") is served from StaticDir with a year of immutable
	// caching; an empty StaticDir disables the location.
	StaticPath string
	StaticDir  string
	// ACMEWebroot is the directory ACME HTTP-01 challenges are served from (TLSACME).
	ACMEWebroot string

	// User for worker processes ("nginx" in the official image); empty omits the directive
	// (required when the master does not run as root).
	User string
	// WorkerProcesses; 0 means auto.
	WorkerProcesses   int
	WorkerConnections int
	// PIDFile must match the running master's, or "nginx -s reload" cannot find it.
	PIDFile string
	// TempDir, when set, holds the client body and proxy temp directories; empty keeps the
	// binary's compiled-in paths (which exist in the images).
	TempDir string
	// MimeTypes is the types file to include; relative paths resolve against the
	// configuration directory.
	MimeTypes string
	// KeepaliveTimeout for client connections.
	KeepaliveTimeout time.Duration
}

// Defaults returns a production-grade configuration without upstreams: plain HTTP on port 80,
// TLS settings ready for the provided/acme modes, 1 MiB bodies, a write limit of 10 r/s per
// address with a burst of 20, logs on stdout/stderr.
func Defaults() Config {
	return Config{
		ServerNames: []string{"_"},
		HTTPPort:    80,
		HTTPSPort:   443,
		TLS: TLS{
			Mode:             TLSOff,
			HTTP2:            true,
			SessionCacheSize: 10 << 20,
			SessionTimeout:   24 * time.Hour,
		},
		HSTS:                     HSTS{MaxAge: 365 * 24 * time.Hour, IncludeSubDomains: true},
		ClientMaxBodySize:        1 << 20,
		ResolverValid:            time.Second,
		ProxyConnectTimeout:      2 * time.Second,
		ProxySendTimeout:         10 * time.Second,
		ProxyReadTimeout:         10 * time.Second,
		UpstreamKeepalive:        32,
		UpstreamKeepaliveTimeout: 60 * time.Second,
		UpstreamMaxFails:         1,
		UpstreamFailTimeout:      10 * time.Second,
		NextUpstreamTries:        3,
		NextUpstreamTimeout:      15 * time.Second,
		WriteRatePerMinute:       600,
		WriteBurst:               20,
		AuthRatePerMinute:        60,
		AuthBurst:                10,
		AuthMethods:              []string{"PATCH", "DELETE"},
		ConnLimitPerAddr:         100,
		LimitZoneSize:            10 << 20,
		AccessLog:                "/dev/stdout",
		ErrorLog:                 "/dev/stderr",
		ErrorLogLevel:            "warn",
		GzipLevel:                5,
		GzipMinLength:            256,
		ContentSecurityPolicy:    "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
		ReferrerPolicy:           "no-referrer",
		InternalPaths:            []string{"/metrics", "/debug/"},
		StaticPath:               "/static/",
		StaticDir:                "/usr/share/nginx/static",
		ACMEWebroot:              "/var/www/certbot",
		User:                     "nginx",
		WorkerConnections:        1024,
		PIDFile:                  "/var/run/nginx.pid",
		MimeTypes:                "mime.types",
		KeepaliveTimeout:         65 * time.Second,
	}
}

// TLSEnabled reports whether the HTTPS server is rendered.
func (c Config) TLSEnabled() bool { return c.TLS.Mode == TLSProvided || c.TLS.Mode == TLSACME }

// RedirectHost is the host the HTTP server redirects to: ServerNames[0] when it is an exact
// name, so a request's Host header (which the client chooses) never picks the target of the
// redirect; nginx's $host only when no exact name is configured ("_" or a wildcard).
func (c Config) RedirectHost() string {
	if len(c.ServerNames) == 0 {
		return "$host"
	}
	n := c.ServerNames[0]
	if n == "_" || strings.ContainsAny(n, "*~") || strings.HasPrefix(n, ".") {
		return "$host"
	}
	return n
}

// CertFiles returns the certificate and key paths used, applying the ACME defaults.
func (c Config) CertFiles() (cert, key string) {
	cert, key = c.TLS.CertFile, c.TLS.KeyFile
	if c.TLS.Mode == TLSACME && len(c.ServerNames) > 0 {
		dir := "/etc/letsencrypt/live/" + c.ServerNames[0]
		if cert == "" {
			cert = dir + "/fullchain.pem"
		}
		if key == "" {
			key = dir + "/privkey.pem"
		}
	}
	return cert, key
}

var (
	reServerName = regexp.MustCompile(`^(_|\*?[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?|\*?\.[A-Za-z0-9][A-Za-z0-9.-]*|[A-Za-z0-9][A-Za-z0-9.-]*\.\*)$`)
	reHost       = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$`)
	reURIPath    = regexp.MustCompile(`^/[A-Za-z0-9._~/-]*$`)
	reUser       = regexp.MustCompile(`^[a-z_][a-z0-9_-]*$`)
	logLevels    = map[string]bool{"debug": true, "info": true, "notice": true, "warn": true, "error": true, "crit": true, "alert": true, "emerg": true}
)

// Validate checks c and returns an error naming every bad field (errors.Join of *FieldError).
func (c Config) Validate() error {
	var errs []error
	bad := func(field, format string, a ...any) {
		errs = append(errs, &FieldError{Field: field, Msg: fmt.Sprintf(format, a...)})
	}

	if len(c.ServerNames) == 0 {
		bad("ServerNames", "must not be empty (use \"_\" to match any host)")
	}
	for i, n := range c.ServerNames {
		if !reServerName.MatchString(n) {
			bad(fmt.Sprintf("ServerNames[%d]", i), "%q is not a host name", n)
		}
	}
	switch {
	case len(c.Upstreams) > 0 && c.UpstreamDNS != "":
		bad("UpstreamDNS", "set either Upstreams (a static list) or UpstreamDNS (one name resolved at run time), not both")
	case c.UpstreamDNS != "":
		if !reHost.MatchString(c.UpstreamDNS) || net.ParseIP(c.UpstreamDNS) != nil {
			bad("UpstreamDNS", "%q is not a host name", c.UpstreamDNS)
		}
		if c.UpstreamPort < 1 || c.UpstreamPort > 65535 {
			bad("UpstreamPort", "%d is not a port (1-65535); required with UpstreamDNS", c.UpstreamPort)
		}
		if len(c.Resolver) == 0 {
			bad("Resolver", "required with UpstreamDNS (in Docker 127.0.0.11)")
		}
	case len(c.Upstreams) == 0:
		bad("Upstreams", "must list at least one host:port, or set UpstreamDNS")
	}
	if c.UpstreamDNS == "" && c.UpstreamPort != 0 {
		bad("UpstreamPort", "only used with UpstreamDNS")
	}
	if c.UpstreamDNS == "" && c.UpstreamResolve {
		bad("UpstreamResolve", "only used with UpstreamDNS")
	}
	if len(c.Resolver) > 0 && (c.ResolverValid < time.Second || c.ResolverValid%time.Second != 0) {
		bad("ResolverValid", "%v is not a whole number of seconds, at least 1s", c.ResolverValid)
	}
	seen := map[string]bool{}
	for i, u := range c.Upstreams {
		f := fmt.Sprintf("Upstreams[%d]", i)
		host, port, err := net.SplitHostPort(u)
		switch {
		case err != nil:
			bad(f, "%q is not host:port", u)
		case !reHost.MatchString(host) && net.ParseIP(host) == nil:
			bad(f, "%q has an invalid host", u)
		case !validPort(port):
			bad(f, "%q has an invalid port", u)
		case seen[u]:
			bad(f, "%q is listed twice", u)
		}
		seen[u] = true
	}
	if c.ListenAddress != "" && net.ParseIP(c.ListenAddress) == nil {
		bad("ListenAddress", "%q is not an IP address", c.ListenAddress)
	}
	checkPort := func(field string, p int) {
		if p < 1 || p > 65535 {
			bad(field, "%d is not a port (1-65535)", p)
		}
	}
	checkPort("HTTPPort", c.HTTPPort)
	switch c.TLS.Mode {
	case "", TLSOff:
	case TLSProvided, TLSACME:
		checkPort("HTTPSPort", c.HTTPSPort)
		if c.HTTPSPort == c.HTTPPort {
			bad("HTTPSPort", "must differ from HTTPPort")
		}
		if c.RedirectPort != 0 {
			checkPort("RedirectPort", c.RedirectPort)
		}
		if c.TLS.Mode == TLSProvided {
			if c.TLS.CertFile == "" {
				bad("TLS.CertFile", "required when TLS.Mode is %q", c.TLS.Mode)
			}
			if c.TLS.KeyFile == "" {
				bad("TLS.KeyFile", "required when TLS.Mode is %q", c.TLS.Mode)
			}
		}
		if c.TLS.Mode == TLSACME {
			if (c.TLS.CertFile == "" || c.TLS.KeyFile == "") && (len(c.ServerNames) == 0 || !reHost.MatchString(c.ServerNames[0])) {
				bad("ServerNames", "the first name must be a plain host name when TLS.Mode is acme without TLS.CertFile/TLS.KeyFile")
			}
			checkPath(bad, "ACMEWebroot", c.ACMEWebroot, true)
		}
		checkPath(bad, "TLS.CertFile", c.TLS.CertFile, false)
		checkPath(bad, "TLS.KeyFile", c.TLS.KeyFile, false)
		checkPath(bad, "TLS.TrustedCertificate", c.TLS.TrustedCertificate, false)
		if c.TLS.SessionCacheSize < 0 {
			bad("TLS.SessionCacheSize", "must not be negative")
		}
		if c.TLS.SessionTimeout <= 0 {
			bad("TLS.SessionTimeout", "must be positive")
		}
		if c.TLS.OCSPStapling && len(c.Resolver) == 0 {
			bad("Resolver", "required when TLS.OCSPStapling is on")
		}
		if c.HSTS.MaxAge < 0 {
			bad("HSTS.MaxAge", "must not be negative")
		}
	default:
		bad("TLS.Mode", "%q is not one of off, provided, acme", c.TLS.Mode)
	}

	if c.ClientMaxBodySize <= 0 {
		bad("ClientMaxBodySize", "must be positive")
	}
	for _, d := range []struct {
		f string
		v time.Duration
	}{
		{"ProxyConnectTimeout", c.ProxyConnectTimeout}, {"ProxySendTimeout", c.ProxySendTimeout},
		{"ProxyReadTimeout", c.ProxyReadTimeout}, {"UpstreamKeepaliveTimeout", c.UpstreamKeepaliveTimeout},
		{"UpstreamFailTimeout", c.UpstreamFailTimeout}, {"NextUpstreamTimeout", c.NextUpstreamTimeout},
		{"KeepaliveTimeout", c.KeepaliveTimeout},
	} {
		if d.v <= 0 {
			bad(d.f, "must be positive")
		} else if d.v%time.Millisecond != 0 {
			bad(d.f, "%v is finer than a millisecond", d.v)
		}
	}
	if c.ProxyConnectTimeout > 75*time.Second {
		bad("ProxyConnectTimeout", "nginx allows at most 75s")
	}
	if c.UpstreamKeepalive < 0 {
		bad("UpstreamKeepalive", "must not be negative")
	}
	if c.UpstreamMaxFails < 0 {
		bad("UpstreamMaxFails", "must not be negative")
	}
	if c.NextUpstreamTries < 1 {
		bad("NextUpstreamTries", "must be at least 1")
	}
	if c.WriteRatePerMinute < 0 {
		bad("WriteRatePerMinute", "must not be negative")
	}
	if c.WriteBurst < 0 {
		bad("WriteBurst", "must not be negative")
	}
	if c.AuthRatePerMinute < 0 {
		bad("AuthRatePerMinute", "must not be negative")
	}
	if c.AuthBurst < 0 {
		bad("AuthBurst", "must not be negative")
	}
	for i, m := range c.AuthMethods {
		switch m {
		case "POST", "PUT", "PATCH", "DELETE":
		default:
			bad(fmt.Sprintf("AuthMethods[%d]", i), "%q is not POST, PUT, PATCH or DELETE", m)
		}
	}
	if c.ConnLimitPerAddr < 0 {
		bad("ConnLimitPerAddr", "must not be negative")
	}
	if (c.WriteRatePerMinute > 0 || c.AuthRatePerMinute > 0 || c.ConnLimitPerAddr > 0) && c.LimitZoneSize < 32<<10 {
		bad("LimitZoneSize", "must be at least 32 KiB when a limit is on")
	}
	for i, p := range c.TrustedProxies {
		if _, _, err := net.ParseCIDR(p); err != nil && net.ParseIP(p) == nil {
			bad(fmt.Sprintf("TrustedProxies[%d]", i), "%q is not an IP address or CIDR", p)
		}
	}
	for i, r := range c.Resolver {
		if net.ParseIP(r) == nil {
			if h, p, err := net.SplitHostPort(r); err != nil || net.ParseIP(h) == nil || !validPort(p) {
				bad(fmt.Sprintf("Resolver[%d]", i), "%q is not an IP address or ip:port", r)
			}
		}
	}
	if c.AccessLog == "" {
		bad("AccessLog", "must be a path or \"off\"")
	} else if c.AccessLog != "off" {
		checkPath(bad, "AccessLog", c.AccessLog, false)
	}
	if c.ErrorLog != "stderr" {
		checkPath(bad, "ErrorLog", c.ErrorLog, true)
	}
	if !logLevels[c.ErrorLogLevel] {
		bad("ErrorLogLevel", "%q is not an nginx log level", c.ErrorLogLevel)
	}
	if c.GzipLevel < 0 || c.GzipLevel > 9 {
		bad("GzipLevel", "%d is not 0 (off) to 9", c.GzipLevel)
	}
	if c.GzipMinLength < 0 {
		bad("GzipMinLength", "must not be negative")
	}
	checkHeader(bad, "ContentSecurityPolicy", c.ContentSecurityPolicy)
	checkHeader(bad, "ReferrerPolicy", c.ReferrerPolicy)
	for i, p := range c.InternalPaths {
		if !reURIPath.MatchString(p) || p == "/" {
			bad(fmt.Sprintf("InternalPaths[%d]", i), "%q is not an absolute path other than /", p)
		}
	}
	if c.StaticDir != "" {
		checkPath(bad, "StaticDir", c.StaticDir, true)
		if !reURIPath.MatchString(c.StaticPath) || !strings.HasSuffix(c.StaticPath, "/") || c.StaticPath == "/" {
			bad("StaticPath", "%q must be an absolute path ending in / (not /)", c.StaticPath)
		}
	}
	if c.User != "" && !reUser.MatchString(c.User) {
		bad("User", "%q is not a user name", c.User)
	}
	if c.WorkerProcesses < 0 {
		bad("WorkerProcesses", "must not be negative (0 means auto)")
	}
	if c.WorkerConnections < 16 {
		bad("WorkerConnections", "must be at least 16")
	}
	checkPath(bad, "PIDFile", c.PIDFile, true)
	checkPath(bad, "TempDir", c.TempDir, false)
	checkPath(bad, "MimeTypes", c.MimeTypes, true)
	return errors.Join(errs...)
}

// FieldError is a Validate error about one Config field.
type FieldError struct {
	Field string // Go field path, e.g. "Upstreams[1]" or "TLS.CertFile"
	Msg   string
}

func (e *FieldError) Error() string { return "nginx config: " + e.Field + ": " + e.Msg }

func validPort(p string) bool {
	n, err := strconv.Atoi(p)
	return err == nil && n >= 1 && n <= 65535 && strconv.Itoa(n) == p
}

// checkPath rejects characters that would break out of an nginx directive argument.
func checkPath(bad func(string, string, ...any), field, p string, required bool) {
	if p == "" {
		if required {
			bad(field, "must not be empty")
		}
		return
	}
	if strings.ContainsAny(p, " \t\r\n;{}\"'$\\#") {
		bad(field, "%q contains a space, quote or one of ;{}$\\#", p)
	}
}

// checkHeader rejects what would break out of a double-quoted nginx string or expand a variable.
func checkHeader(bad func(string, string, ...any), field, v string) {
	if strings.ContainsAny(v, "\"\\$\r\n") {
		bad(field, "%q contains a double quote, backslash, $ or line break", v)
	}
}
