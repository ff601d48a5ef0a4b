// Package config loads and validates the service's configuration from
// environment variables (docs/service.md has the table of variables).
package config

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"os"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// Config is the validated configuration.
type Config struct {
	DatabaseURL      string // connection string; built from PG* when DATABASE_URL(_FILE) is unset
	DatabaseURLVar   string // where DatabaseURL came from, for error messages
	HTTPAddr         string
	LogLevel         slog.Level
	LogFormat        string // json or text
	DBMaxConns       int32
	DBMinConns       int32
	HTTPReadTimeout  time.Duration
	HTTPWriteTimeout time.Duration
	HTTPIdleTimeout  time.Duration
	ShutdownTimeout  time.Duration
	DrainDelay       time.Duration
	ShutdownLinger   time.Duration
	MaxBodyBytes     int64
	AppDBRole        string       // migrate up only
	AppDBPassword    string       // migrate up only
	Revision         string       // NOTES_REVISION: sent as X-Notes-Revision; empty sends none
	WriteAuth        string       // WRITE_AUTH: modify, all or none
	APITokens        []string     // from API_TOKENS_FILE; none when it is unset
	TrustedProxies   []*net.IPNet // TRUSTED_PROXIES: peers whose X-Forwarded-For is believed
}

// DefaultDBMaxConns is DB_MAX_CONNS when it is unset: 2 × GOMAXPROCS (the
// CPUs this process may use, which Go derives from the machine or the
// container's CPU limit), at least 4. The service runs next to its database
// on a host of the same size, where a few connections per core saturate
// Postgres; more only queue inside it and lengthen the tail (on the 2-core
// benchmark host POST p99 was 17–50 ms with 4 connections, 57–130 ms with 8
// and 110–200 ms with 10; docs/service.md, "Pool sizing").
func DefaultDBMaxConns() int32 {
	n := 2 * runtime.GOMAXPROCS(0)
	if n < 4 {
		n = 4
	}
	return int32(n)
}

// Error is a configuration error; it names the variable.
type Error struct {
	Var string
	Msg string
}

func (e *Error) Error() string { return e.Var + ": " + e.Msg }

// pgEnv are the libpq variables used when DATABASE_URL is unset, with the
// connection-string keyword each maps to.
var pgEnv = []struct{ env, key string }{
	{"PGHOST", "host"}, {"PGPORT", "port"}, {"PGDATABASE", "dbname"}, {"PGUSER", "user"},
	{"PGPASSWORD", "password"}, {"PGSSLMODE", "sslmode"}, {"PGCONNECT_TIMEOUT", "connect_timeout"},
	{"PGAPPNAME", "application_name"}, {"PGSSLROOTCERT", "sslrootcert"}, {"PGSSLCERT", "sslcert"},
	{"PGSSLKEY", "sslkey"}, {"PGPASSFILE", "passfile"}, {"PGTARGETSESSIONATTRS", "target_session_attrs"},
}

// Load reads the configuration through getenv and validates every value.
// All problems are reported at once, joined; each names its variable.
func Load(getenv func(string) string) (Config, error) {
	var errs []error
	bad := func(v, format string, a ...any) { errs = append(errs, &Error{Var: v, Msg: fmt.Sprintf(format, a...)}) }
	get := func(k, def string) string {
		if v := strings.TrimSpace(getenv(k)); v != "" {
			return v
		}
		return def
	}
	c := Config{}

	dsn, dsnVar, err := secret(getenv, "DATABASE_URL")
	if err != nil {
		errs = append(errs, err)
	}
	if strings.TrimSpace(dsn) == "" && err == nil {
		dsn, dsnVar = dsnFromPGEnv(getenv), "PG* variables"
	}
	c.DatabaseURL, c.DatabaseURLVar = dsn, dsnVar
	if err == nil {
		if _, err := pgconn.ParseConfig(c.DatabaseURL); err != nil {
			bad(dsnVar, "invalid connection string %s", Redact(c.DatabaseURL))
		}
	}

	c.HTTPAddr = get("HTTP_ADDR", ":8080")
	if host, port, err := net.SplitHostPort(c.HTTPAddr); err != nil {
		bad("HTTP_ADDR", "%q is not host:port (example :8080)", c.HTTPAddr)
	} else if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		bad("HTTP_ADDR", "port %q is not a number from 0 to 65535", port)
	} else if host != "" && net.ParseIP(host) == nil && !validHostname(host) {
		bad("HTTP_ADDR", "host %q is not an IP address or host name", host)
	}

	switch lv := strings.ToLower(get("LOG_LEVEL", "info")); lv {
	case "debug":
		c.LogLevel = slog.LevelDebug
	case "info":
		c.LogLevel = slog.LevelInfo
	case "warn", "warning":
		c.LogLevel = slog.LevelWarn
	case "error":
		c.LogLevel = slog.LevelError
	default:
		bad("LOG_LEVEL", "%q is not one of debug, info, warn, error", lv)
	}
	c.LogFormat = strings.ToLower(get("LOG_FORMAT", "json"))
	if c.LogFormat != "json" && c.LogFormat != "text" {
		bad("LOG_FORMAT", "%q is not json or text", c.LogFormat)
	}

	intVar := func(name, def string, min, max int64) int64 {
		s := get(name, def)
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < min || n > max {
			bad(name, "%q is not an integer from %d to %d", s, min, max)
			return 0
		}
		return n
	}
	c.DBMaxConns = int32(intVar("DB_MAX_CONNS", strconv.Itoa(int(DefaultDBMaxConns())), 1, 10000))
	c.DBMinConns = int32(intVar("DB_MIN_CONNS", "0", 0, 10000))
	if c.DBMaxConns > 0 && c.DBMinConns > c.DBMaxConns {
		bad("DB_MIN_CONNS", "%d is greater than DB_MAX_CONNS (%d)", c.DBMinConns, c.DBMaxConns)
	}
	c.MaxBodyBytes = intVar("MAX_BODY_BYTES", "1048576", 1, 1<<30)

	durVar := func(name, def string, allowZero bool) time.Duration {
		s := get(name, def)
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 || (d == 0 && !allowZero) || d > 24*time.Hour {
			bad(name, "%q is not a positive duration such as 10s or 500ms", s)
			return 0
		}
		return d
	}
	c.HTTPReadTimeout = durVar("HTTP_READ_TIMEOUT", "10s", false)
	c.HTTPWriteTimeout = durVar("HTTP_WRITE_TIMEOUT", "30s", false)
	c.HTTPIdleTimeout = durVar("HTTP_IDLE_TIMEOUT", "120s", false)
	c.ShutdownTimeout = durVar("SHUTDOWN_TIMEOUT", "15s", false)
	c.DrainDelay = durVar("DRAIN_DELAY", "5s", true)
	c.ShutdownLinger = durVar("SHUTDOWN_LINGER", "0s", true)

	c.AppDBRole = getenv("APP_DB_ROLE")
	c.AppDBPassword, _, err = secret(getenv, "APP_DB_PASSWORD")
	if err != nil {
		errs = append(errs, err)
	}

	c.WriteAuth = strings.ToLower(get("WRITE_AUTH", "modify"))
	switch c.WriteAuth {
	case "modify", "all", "none":
	default:
		bad("WRITE_AUTH", "%q is not one of modify (PATCH and DELETE need a token), all (POST too), none", c.WriteAuth)
	}
	if path := getenv("API_TOKENS_FILE"); path != "" {
		if c.WriteAuth == "none" {
			bad("API_TOKENS_FILE", "set, but WRITE_AUTH=none uses no tokens; unset one of them")
		} else if c.APITokens, err = readTokens(path); err != nil {
			bad("API_TOKENS_FILE", "%v", err)
		}
	}
	c.TrustedProxies, err = parseNetworks(getenv("TRUSTED_PROXIES"))
	if err != nil {
		bad("TRUSTED_PROXIES", "%v", err)
	}

	c.Revision = getenv("NOTES_REVISION")
	if c.Revision != "" && !validRevision(c.Revision) {
		bad("NOTES_REVISION", "%q is not 1 to 64 characters of A-Z a-z 0-9 . _ -", c.Revision)
	}
	return c, errors.Join(errs...)
}

// secret reads the variable name or, when name_FILE is set, the file it
// names (how containers get secrets without putting them in the process
// environment). The value is the file's content without one trailing
// newline. It returns the variable the value came from. Errors name the
// variable and the path, never the content.
func secret(getenv func(string) string, name string) (value, from string, err error) {
	fileVar := name + "_FILE"
	path := getenv(fileVar)
	if path == "" {
		return getenv(name), name, nil
	}
	if getenv(name) != "" {
		return "", fileVar, &Error{Var: fileVar, Msg: "set together with " + name + "; set only one of them"}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		reason := err
		var pe *fs.PathError
		if errors.As(err, &pe) {
			reason = pe.Err
		}
		return "", fileVar, &Error{Var: fileVar, Msg: fmt.Sprintf("cannot read %s: %v", path, reason)}
	}
	v := string(b)
	if strings.HasSuffix(v, "\r\n") {
		v = v[:len(v)-2]
	} else {
		v = strings.TrimSuffix(v, "\n")
	}
	if v == "" {
		return "", fileVar, &Error{Var: fileVar, Msg: fmt.Sprintf("file %s is empty", path)}
	}
	return v, fileVar, nil
}

// minTokenLen is the shortest API token: a guessable token protects nothing.
const minTokenLen = 16

// readTokens reads an API token file: one token per line; blank lines and
// lines starting with # are ignored. Errors name the path and the line,
// never a token.
func readTokens(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fmt.Errorf("cannot read %s: %v", path, err)
	}
	var tokens []string
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
			continue
		case strings.ContainsFunc(line, func(r rune) bool { return r <= ' ' || r == 0x7f }):
			return nil, fmt.Errorf("%s line %d: a token has no spaces or control characters", path, i+1)
		case len(line) < minTokenLen:
			return nil, fmt.Errorf("%s line %d: a token needs at least %d characters", path, i+1, minTokenLen)
		}
		tokens = append(tokens, line)
	}
	if len(tokens) == 0 {
		return nil, fmt.Errorf("%s holds no token (only blank lines and comments)", path)
	}
	return tokens, nil
}

// parseNetworks parses a comma-separated list of CIDRs or IP addresses
// (one address is a /32 or /128).
func parseNetworks(s string) ([]*net.IPNet, error) {
	var nets []*net.IPNet
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if ip := net.ParseIP(f); ip != nil {
			bits := 8 * len(ip.To16())
			if ip4 := ip.To4(); ip4 != nil {
				ip, bits = ip4, 32
			}
			nets = append(nets, &net.IPNet{IP: ip, Mask: net.CIDRMask(bits, bits)})
			continue
		}
		_, n, err := net.ParseCIDR(f)
		if err != nil {
			return nil, fmt.Errorf("%q is not a CIDR (10.0.0.0/8, fd00::/8) or an IP address", f)
		}
		nets = append(nets, n)
	}
	return nets, nil
}

// validRevision accepts 1 to 64 characters of [A-Za-z0-9._-]: safe in a
// header and in a shell-quoted check (git hashes, image tags, timestamps).
func validRevision(r string) bool {
	if len(r) == 0 || len(r) > 64 {
		return false
	}
	for i := 0; i < len(r); i++ {
		c := r[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_', c == '.':
		default:
			return false
		}
	}
	return true
}

// ValidateAppRole checks the APP_DB_ROLE / APP_DB_PASSWORD pair (used by
// migrate up only): both or neither.
func (c Config) ValidateAppRole() error {
	switch {
	case c.AppDBRole == "" && c.AppDBPassword == "":
		return nil
	case c.AppDBRole == "":
		return &Error{Var: "APP_DB_ROLE", Msg: "must be set when APP_DB_PASSWORD(_FILE) is set"}
	case c.AppDBPassword == "":
		return &Error{Var: "APP_DB_PASSWORD", Msg: "must be set (or APP_DB_PASSWORD_FILE) when APP_DB_ROLE is set"}
	}
	return nil
}

func dsnFromPGEnv(getenv func(string) string) string {
	var parts []string
	for _, p := range pgEnv {
		if v := getenv(p.env); v != "" {
			parts = append(parts, p.key+"="+quoteDSNValue(v))
		}
	}
	return strings.Join(parts, " ")
}

// quoteDSNValue quotes a keyword/value connection string value.
func quoteDSNValue(v string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}

var hostnameRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$`)

func validHostname(h string) bool { return hostnameRE.MatchString(h) }

var kvPasswordRE = regexp.MustCompile(`(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)`)

// Redact returns the connection string with any password replaced by
// "xxxxx", in URL or keyword/value form. Unparseable URLs lose everything
// between "://" and "@".
func Redact(dsn string) string {
	if strings.Contains(dsn, "://") {
		if u, err := url.Parse(dsn); err == nil {
			if u.User != nil {
				if _, has := u.User.Password(); has {
					u.User = url.UserPassword(u.User.Username(), "xxxxx")
				}
			}
			q := u.Query()
			if q.Has("password") {
				q.Set("password", "xxxxx")
				u.RawQuery = q.Encode()
			}
			return u.String()
		}
		scheme, rest, _ := strings.Cut(dsn, "://")
		if i := strings.LastIndex(rest, "@"); i >= 0 {
			rest = "xxxxx" + rest[i:]
		}
		if j := strings.IndexAny(rest, "?"); j >= 0 {
			rest = rest[:j] + "?<redacted>"
		}
		return scheme + "://" + rest
	}
	return kvPasswordRE.ReplaceAllString(dsn, "${1}xxxxx")
}
