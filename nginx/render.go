package nginx

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"strings"
	"text/template"
	"time"
)

//go:embed templates/*.tmpl
var templateFS embed.FS

var templates = template.Must(template.New("").Option("missingkey=error").ParseFS(templateFS, "templates/*.tmpl"))

// Files rendered by Render, relative to the configuration directory (/etc/nginx).
const (
	MainFile    = "nginx.conf"
	SiteFile    = "conf.d/notes.conf"
	DefaultFile = "conf.d/default.conf"
)

// Render validates c and returns the files to install, keyed by path relative to the
// configuration directory: nginx.conf, conf.d/notes.conf, and conf.d/default.conf, an empty
// placeholder that overwrites the image's default site (nginx.conf includes only notes.conf,
// so a stale default.conf is harmless either way).
func Render(c Config) (map[string][]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	v := newView(c)
	files := map[string][]byte{
		DefaultFile: []byte("# Intentionally empty: the notes site is conf.d/notes.conf (rendered by github.com/notes-stack/notes/nginx).\n"),
	}
	for name, tmpl := range map[string]string{MainFile: "nginx.conf.tmpl", SiteFile: "notes.conf.tmpl"} {
		var buf bytes.Buffer
		if err := templates.ExecuteTemplate(&buf, tmpl, v); err != nil {
			return nil, fmt.Errorf("nginx: render %s: %w", name, err)
		}
		files[name] = buf.Bytes()
	}
	return files, nil
}

// view is what the templates see: values already in nginx syntax.
type view struct {
	Config
	WorkerProcesses          string
	KeepaliveTimeout         string
	ClientMaxBodySize        string
	LimitZoneSize            string
	WriteRate                string
	AuthRate                 string // empty: no limit on token attempts
	Resolver                 string
	ResolverValid            string
	ServerNames              string
	UpstreamFailTimeout      string
	UpstreamKeepaliveTimeout string
	ProxyConnectTimeout      string
	ProxySendTimeout         string
	ProxyReadTimeout         string
	NextUpstreamTimeout      string
	TLSSessionCacheSize      string
	TLSSessionTimeout        string
	HSTSValue                string
	Headers                  []string // add_header lines sent on every response
	HTTPListen               []string
	HTTPSListen              []string
	RedirectHost             string // the configured name, or $host when there is none
	RedirectPortSuffix       string
	CertFile, KeyFile        string
	ACMEWebroot              string
	InternalLocations        []string
	Problems                 []problem
	HTTPView                 *view // the plain-HTTP server when TLS is on: no HSTS
}

type problem struct {
	Status     int
	Body       string
	RetryAfter string
}

func newView(c Config) *view {
	v := &view{
		Config:                   c,
		WorkerProcesses:          "auto",
		KeepaliveTimeout:         duration(c.KeepaliveTimeout),
		ClientMaxBodySize:        size(c.ClientMaxBodySize),
		LimitZoneSize:            size(c.LimitZoneSize),
		Resolver:                 strings.Join(c.Resolver, " "),
		ResolverValid:            duration(c.ResolverValid),
		ServerNames:              strings.Join(c.ServerNames, " "),
		UpstreamFailTimeout:      duration(c.UpstreamFailTimeout),
		UpstreamKeepaliveTimeout: duration(c.UpstreamKeepaliveTimeout),
		ProxyConnectTimeout:      duration(c.ProxyConnectTimeout),
		ProxySendTimeout:         duration(c.ProxySendTimeout),
		ProxyReadTimeout:         duration(c.ProxyReadTimeout),
		NextUpstreamTimeout:      duration(c.NextUpstreamTimeout),
		TLSSessionCacheSize:      size(c.TLS.SessionCacheSize),
		TLSSessionTimeout:        duration(c.TLS.SessionTimeout),
	}
	if c.WorkerProcesses > 0 {
		v.WorkerProcesses = strconv.Itoa(c.WorkerProcesses)
	}
	v.WriteRate = rate(c.WriteRatePerMinute)
	if len(c.AuthMethods) > 0 {
		v.AuthRate = rate(c.AuthRatePerMinute)
	}
	listen := func(port int) []string {
		if c.ListenAddress != "" {
			return []string{net.JoinHostPort(c.ListenAddress, strconv.Itoa(port))}
		}
		l := []string{strconv.Itoa(port)}
		if c.ListenIPv6 {
			l = append(l, "[::]:"+strconv.Itoa(port))
		}
		return l
	}
	v.HTTPListen = listen(c.HTTPPort)
	for _, p := range c.InternalPaths {
		if strings.HasSuffix(p, "/") {
			v.InternalLocations = append(v.InternalLocations, "^~ "+p)
		} else {
			v.InternalLocations = append(v.InternalLocations, "= "+p, "^~ "+p+"/")
		}
	}
	v.Problems = problems(c)
	if c.TLSEnabled() {
		v.HTTPSListen = listen(c.HTTPSPort)
		v.CertFile, v.KeyFile = c.CertFiles()
		if c.TLS.Mode == TLSACME {
			v.ACMEWebroot = c.ACMEWebroot
		}
		v.RedirectHost = c.RedirectHost()
		port := c.RedirectPort
		if port == 0 {
			port = c.HTTPSPort
		}
		if port != 443 {
			v.RedirectPortSuffix = ":" + strconv.Itoa(port)
		}
		if c.HSTS.MaxAge > 0 {
			v.HSTSValue = "max-age=" + strconv.FormatInt(int64(c.HSTS.MaxAge/time.Second), 10)
			if c.HSTS.IncludeSubDomains {
				v.HSTSValue += "; includeSubDomains"
			}
			if c.HSTS.Preload {
				v.HSTSValue += "; preload"
			}
		}
		plain := *v
		plain.HSTSValue = ""
		plain.Headers = headers(plain)
		v.HTTPView = &plain
	}
	v.Headers = headers(*v)
	return v
}

// headers are the security headers, sent with "always" so that errors carry them too. Every
// location that adds its own header must repeat them (add_header is not inherited then).
func headers(v view) []string {
	h := []string{
		`add_header X-Request-ID $notes_request_id always;`,
		`add_header X-Content-Type-Options "nosniff" always;`,
		`add_header X-Frame-Options "DENY" always;`,
	}
	if v.ReferrerPolicy != "" {
		h = append(h, `add_header Referrer-Policy "`+v.ReferrerPolicy+`" always;`)
	}
	if v.ContentSecurityPolicy != "" {
		h = append(h, `add_header Content-Security-Policy "`+v.ContentSecurityPolicy+`" always;`)
	}
	if v.HSTSValue != "" {
		h = append(h, `add_header Strict-Transport-Security "`+v.HSTSValue+`" always;`)
	}
	return h
}

// problems are the RFC 9457 bodies nginx answers for its own errors. The request id is an nginx
// variable whose value is restricted to [A-Za-z0-9._:-] (or nginx's hex id), so it is JSON-safe.
func problems(c Config) []problem {
	list := []struct {
		status int
		detail string
	}{
		{403, "Access to this resource is forbidden."},
		{404, "The requested resource was not found."},
		{405, "The method is not allowed for this resource."},
		{413, fmt.Sprintf("The request body is larger than the limit of %d bytes.", c.ClientMaxBodySize)},
		{429, "Too many requests from this address; retry later."},
		{500, "The proxy failed to handle the request."},
		{502, "No application server could answer the request."},
		{503, "The service is temporarily unavailable."},
		{504, "The application server did not answer in time."},
	}
	out := make([]problem, 0, len(list))
	for _, p := range list {
		body, _ := json.Marshal(struct {
			Type      string `json:"type"`
			Title     string `json:"title"`
			Status    int    `json:"status"`
			Detail    string `json:"detail"`
			RequestID string `json:"request_id"`
		}{"about:blank", httpStatusText(p.status), p.status, p.detail, "$notes_request_id"})
		pr := problem{Status: p.status, Body: string(body)}
		if p.status == 429 {
			pr.RetryAfter = "1"
			if c.WriteRatePerMinute > 0 && c.WriteRatePerMinute < 60 {
				pr.RetryAfter = strconv.Itoa((60 + c.WriteRatePerMinute - 1) / c.WriteRatePerMinute)
			}
		}
		out = append(out, pr)
	}
	return out
}

func httpStatusText(code int) string {
	switch code {
	case 413:
		return "Content Too Large"
	}
	return map[int]string{
		403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 429: "Too Many Requests",
		500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout",
	}[code]
}

// duration formats d in nginx time syntax (ms, s, m, h, d), exactly.
func duration(d time.Duration) string {
	ms := d.Milliseconds()
	switch {
	case ms == 0:
		return "0"
	case ms%(24*3600*1000) == 0:
		return fmt.Sprintf("%dd", ms/(24*3600*1000))
	case ms%(3600*1000) == 0:
		return fmt.Sprintf("%dh", ms/(3600*1000))
	case ms%(60*1000) == 0:
		return fmt.Sprintf("%dm", ms/(60*1000))
	case ms%1000 == 0:
		return fmt.Sprintf("%ds", ms/1000)
	}
	return fmt.Sprintf("%dms", ms)
}

// size formats n bytes in nginx size syntax (k, m, g), exactly.
func size(n int64) string {
	switch {
	case n != 0 && n%(1<<30) == 0:
		return fmt.Sprintf("%dg", n>>30)
	case n != 0 && n%(1<<20) == 0:
		return fmt.Sprintf("%dm", n>>20)
	case n != 0 && n%(1<<10) == 0:
		return fmt.Sprintf("%dk", n>>10)
	}
	return strconv.FormatInt(n, 10)
}

// rate is a per-minute limit in limit_req_zone syntax ("" for 0: no limit).
func rate(perMinute int) string {
	switch {
	case perMinute <= 0:
		return ""
	case perMinute%60 == 0:
		return fmt.Sprintf("%dr/s", perMinute/60)
	}
	return fmt.Sprintf("%dr/m", perMinute)
}
