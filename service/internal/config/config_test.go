package config_test

import (
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/notes-stack/notes/service/internal/config"
)

func envFunc(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestDefaults(t *testing.T) {
	c, err := config.Load(envFunc(map[string]string{"DATABASE_URL": "postgres://u@h/db"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTPAddr != ":8080" || c.DBMaxConns != config.DefaultDBMaxConns() || c.DBMinConns != 0 || c.MaxBodyBytes != 1048576 ||
		c.HTTPReadTimeout != 10*time.Second || c.HTTPWriteTimeout != 30*time.Second || c.HTTPIdleTimeout != 120*time.Second ||
		c.ShutdownTimeout != 15*time.Second || c.DrainDelay != 5*time.Second || c.LogFormat != "json" {
		t.Errorf("defaults: %+v", c)
	}
}

func TestPGEnvFallback(t *testing.T) {
	c, err := config.Load(envFunc(map[string]string{"PGHOST": "db", "PGUSER": "app", "PGPASSWORD": "it's secret", "PGDATABASE": "notes"}))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"host='db'", "user='app'", "dbname='notes'"} {
		if !strings.Contains(c.DatabaseURL, want) {
			t.Errorf("DSN %q lacks %s", c.DatabaseURL, want)
		}
	}
	if r := config.Redact(c.DatabaseURL); strings.Contains(r, "secret") {
		t.Errorf("Redact left the password: %s", r)
	}
}

func TestErrorsNameTheVariable(t *testing.T) {
	tests := []struct {
		name, key, value string
	}{
		{"bad url", "DATABASE_URL", "postgres://u:hunter2@h:5432/db?sslmode=nonsense"},
		{"addr without port", "HTTP_ADDR", "localhost"},
		{"addr bad port", "HTTP_ADDR", ":99999"},
		{"addr port not number", "HTTP_ADDR", ":http-ish"},
		{"log level", "LOG_LEVEL", "loud"},
		{"log format", "LOG_FORMAT", "xml"},
		{"max conns not int", "DB_MAX_CONNS", "ten"},
		{"max conns zero", "DB_MAX_CONNS", "0"},
		{"min conns negative", "DB_MIN_CONNS", "-1"},
		{"min above max", "DB_MIN_CONNS", "11"},
		{"read timeout", "HTTP_READ_TIMEOUT", "10"},
		{"write timeout zero", "HTTP_WRITE_TIMEOUT", "0s"},
		{"idle timeout negative", "HTTP_IDLE_TIMEOUT", "-1s"},
		{"shutdown timeout", "SHUTDOWN_TIMEOUT", "soon"},
		{"drain delay", "DRAIN_DELAY", "-5s"},
		{"max body", "MAX_BODY_BYTES", "1MB"},
		{"max body zero", "MAX_BODY_BYTES", "0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{"DATABASE_URL": "postgres://u@h/db", tc.key: tc.value}
			_, err := config.Load(envFunc(env))
			if err == nil {
				t.Fatalf("%s=%q accepted", tc.key, tc.value)
			}
			if !strings.HasPrefix(err.Error(), tc.key+":") {
				t.Errorf("error %q does not name %s", err, tc.key)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error leaks the password: %q", err)
			}
		})
	}
}

func TestDrainDelayZeroAllowed(t *testing.T) {
	if _, err := config.Load(envFunc(map[string]string{"DATABASE_URL": "postgres://u@h/db", "DRAIN_DELAY": "0s"})); err != nil {
		t.Fatal(err)
	}
}

func TestAppRolePair(t *testing.T) {
	tests := []struct {
		role, pw, wantVar string
	}{
		{"", "", ""},
		{"app", "pw", ""},
		{"app", "", "APP_DB_PASSWORD"},
		{"", "pw", "APP_DB_ROLE"},
	}
	for _, tc := range tests {
		c := config.Config{AppDBRole: tc.role, AppDBPassword: tc.pw}
		err := c.ValidateAppRole()
		switch {
		case tc.wantVar == "" && err != nil:
			t.Errorf("%+v: %v", tc, err)
		case tc.wantVar != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.wantVar)):
			t.Errorf("%+v: err %v, want one naming %s", tc, err, tc.wantVar)
		}
	}
}

func TestRedact(t *testing.T) {
	tests := []struct{ in, notWant string }{
		{"postgres://user:s3cr3t@host:5432/db", "s3cr3t"},
		{"postgres://user:s3cr3t@host/db?password=other", "other"},
		{"host=h user=u password=s3cr3t dbname=d", "s3cr3t"},
		{"host=h password='s3 cr3t' dbname=d", "cr3t"},
		{"postgres://user:s3%cr3t@host/db", "cr3t"},
	}
	for _, tc := range tests {
		got := config.Redact(tc.in)
		if strings.Contains(got, tc.notWant) {
			t.Errorf("Redact(%q) = %q", tc.in, got)
		}
	}
	if got := config.Redact("postgres://user@host/db"); got != "postgres://user@host/db" {
		t.Errorf("no password: %q", got)
	}
}

func TestDefaultDBMaxConns(t *testing.T) {
	procs := runtime.GOMAXPROCS(0)
	defer runtime.GOMAXPROCS(procs)
	for procs, want := range map[int]int32{1: 4, 2: 4, 3: 6, 8: 16} {
		runtime.GOMAXPROCS(procs)
		if got := config.DefaultDBMaxConns(); got != want {
			t.Errorf("GOMAXPROCS=%d: DefaultDBMaxConns() = %d, want %d", procs, got, want)
		}
	}
}

// writeFile writes content to a new file in a temp dir and returns its path.
func writeFile(t *testing.T, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSecretsFromFiles(t *testing.T) {
	tests := []struct {
		name, content, want string
	}{
		{"no newline", "s3cr3t", "s3cr3t"},
		{"newline", "s3cr3t\n", "s3cr3t"},
		{"crlf", "s3cr3t\r\n", "s3cr3t"},
		{"only one newline removed", "s3cr3t\n\n", "s3cr3t\n"},
		{"spaces kept", " s3 cr3t \n", " s3 cr3t "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dsn := (&url.URL{Scheme: "postgres", User: url.UserPassword("u", tc.want), Host: "h", Path: "db"}).String()
			env := map[string]string{
				"DATABASE_URL_FILE":    writeFile(t, dsn+strings.TrimPrefix(tc.content, tc.want), 0o400),
				"APP_DB_PASSWORD_FILE": writeFile(t, tc.content, 0o400),
				"APP_DB_ROLE":          "app",
			}
			c, err := config.Load(envFunc(env))
			if err != nil {
				t.Fatal(err)
			}
			if c.AppDBPassword != tc.want {
				t.Errorf("AppDBPassword = %q, want %q", c.AppDBPassword, tc.want)
			}
			if strings.TrimSpace(tc.want) == tc.want && (c.DatabaseURL != dsn || c.DatabaseURLVar != "DATABASE_URL_FILE") {
				t.Errorf("DatabaseURL = %q from %s, want %q from DATABASE_URL_FILE", c.DatabaseURL, c.DatabaseURLVar, dsn)
			}
		})
	}
}

func TestSecretFileErrors(t *testing.T) {
	const content = "postgres://u:hunter2@h/db"
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing")
	tests := []struct {
		name    string
		env     map[string]string
		wantVar string
		wantIn  []string
	}{
		{"url both", map[string]string{"DATABASE_URL": content, "DATABASE_URL_FILE": writeFile(t, content, 0o400)},
			"DATABASE_URL_FILE", []string{"DATABASE_URL;"}},
		{"url missing file", map[string]string{"DATABASE_URL_FILE": missing}, "DATABASE_URL_FILE", []string{missing}},
		{"url directory", map[string]string{"DATABASE_URL_FILE": dir}, "DATABASE_URL_FILE", []string{dir}},
		{"url empty file", map[string]string{"DATABASE_URL_FILE": writeFile(t, "\n", 0o400)}, "DATABASE_URL_FILE", []string{"empty"}},
		{"password both", map[string]string{"DATABASE_URL": "postgres://u@h/db", "APP_DB_PASSWORD": "hunter2", "APP_DB_PASSWORD_FILE": writeFile(t, "hunter2", 0o400)},
			"APP_DB_PASSWORD_FILE", []string{"APP_DB_PASSWORD;"}},
		{"password empty file", map[string]string{"DATABASE_URL": "postgres://u@h/db", "APP_DB_PASSWORD_FILE": writeFile(t, "", 0o400)},
			"APP_DB_PASSWORD_FILE", []string{"empty"}},
		{"bad url in file", map[string]string{"DATABASE_URL_FILE": writeFile(t, content+"?sslmode=nonsense", 0o400)},
			"DATABASE_URL_FILE", []string{"invalid connection string"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Load(envFunc(tc.env))
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.HasPrefix(err.Error(), tc.wantVar+":") {
				t.Errorf("error %q does not name %s", err, tc.wantVar)
			}
			for _, w := range tc.wantIn {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error leaks the content: %q", err)
			}
		})
	}
}

func TestUnreadableSecretFile(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads files of any mode")
	}
	p := writeFile(t, "hunter2", 0o000)
	_, err := config.Load(envFunc(map[string]string{"DATABASE_URL": "postgres://u@h/db", "APP_DB_PASSWORD_FILE": p}))
	if err == nil || !strings.HasPrefix(err.Error(), "APP_DB_PASSWORD_FILE:") || !strings.Contains(err.Error(), p) {
		t.Errorf("err = %v", err)
	}
}

func TestRevision(t *testing.T) {
	tests := []struct {
		value string
		ok    bool
	}{
		{"", true},
		{"0e48f66", true},
		{"v1.2.3_rc-1", true},
		{strings.Repeat("a", 64), true},
		{strings.Repeat("a", 65), false},
		{"has space", false},
		{"semi;colon", false},
		{"new\nline", false},
		{"ünï", false},
	}
	for _, tc := range tests {
		c, err := config.Load(envFunc(map[string]string{"DATABASE_URL": "postgres://u@h/db", "NOTES_REVISION": tc.value}))
		switch {
		case tc.ok && (err != nil || c.Revision != tc.value):
			t.Errorf("NOTES_REVISION=%q: %v, Revision %q", tc.value, err, c.Revision)
		case !tc.ok && (err == nil || !strings.HasPrefix(err.Error(), "NOTES_REVISION:")):
			t.Errorf("NOTES_REVISION=%q: err %v, want one naming NOTES_REVISION", tc.value, err)
		}
	}
}

func TestWriteAuthAndTokens(t *testing.T) {
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := file("good", "# deploy tokens\n\n  tok-aaaaaaaaaaaaaaaa  \r\ntok-bbbbbbbbbbbbbbbb\n# old: tok-cccc\n")
	tests := []struct {
		name      string
		env       map[string]string
		writeAuth string
		tokens    []string
		errVar    string // "" means no error
	}{
		{"default", nil, "modify", nil, ""},
		{"tokens", map[string]string{"API_TOKENS_FILE": good}, "modify", []string{"tok-aaaaaaaaaaaaaaaa", "tok-bbbbbbbbbbbbbbbb"}, ""},
		{"all", map[string]string{"WRITE_AUTH": "ALL", "API_TOKENS_FILE": good}, "all", []string{"tok-aaaaaaaaaaaaaaaa", "tok-bbbbbbbbbbbbbbbb"}, ""},
		{"none", map[string]string{"WRITE_AUTH": "none"}, "none", nil, ""},
		{"bad mode", map[string]string{"WRITE_AUTH": "some"}, "", nil, "WRITE_AUTH"},
		{"none with tokens", map[string]string{"WRITE_AUTH": "none", "API_TOKENS_FILE": good}, "", nil, "API_TOKENS_FILE"},
		{"empty file", map[string]string{"API_TOKENS_FILE": file("empty", "")}, "", nil, "API_TOKENS_FILE"},
		{"only comments", map[string]string{"API_TOKENS_FILE": file("comments", "# a\n\n   \n#b\n")}, "", nil, "API_TOKENS_FILE"},
		{"short token", map[string]string{"API_TOKENS_FILE": file("short", "tok-aaaaaaaaaaaaaaaa\nshort\n")}, "", nil, "API_TOKENS_FILE"},
		{"space inside", map[string]string{"API_TOKENS_FILE": file("space", "tok-aaaaaaaa aaaaaaaa\n")}, "", nil, "API_TOKENS_FILE"},
		{"missing file", map[string]string{"API_TOKENS_FILE": filepath.Join(dir, "nope")}, "", nil, "API_TOKENS_FILE"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{"DATABASE_URL": "postgres://u@h/db"}
			for k, v := range tc.env {
				env[k] = v
			}
			c, err := config.Load(envFunc(env))
			if tc.errVar != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tc.errVar+": ") {
					t.Fatalf("err = %v, want one naming %s", err, tc.errVar)
				}
				if strings.Contains(err.Error(), "tok-aaaa") {
					t.Errorf("the error shows a token: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.WriteAuth != tc.writeAuth || strings.Join(c.APITokens, ",") != strings.Join(tc.tokens, ",") {
				t.Errorf("WriteAuth %q, tokens %q", c.WriteAuth, c.APITokens)
			}
		})
	}
}

func TestTrustedProxies(t *testing.T) {
	tests := []struct {
		value string
		want  string // the networks, comma-separated; "error" for an error
	}{
		{"", ""},
		{"10.0.0.0/8", "10.0.0.0/8"},
		{" 172.18.0.0/16 , 10.1.2.3 ,fd00::/8", "172.18.0.0/16,10.1.2.3/32,fd00::/8"},
		{"::1", "::1/128"},
		{"10.0.0.0/33", "error"},
		{"proxy.example", "error"},
		{"10.0.0.0/8;", "error"},
	}
	for _, tc := range tests {
		c, err := config.Load(envFunc(map[string]string{"DATABASE_URL": "postgres://u@h/db", "TRUSTED_PROXIES": tc.value}))
		if tc.want == "error" {
			if err == nil || !strings.HasPrefix(err.Error(), "TRUSTED_PROXIES: ") {
				t.Errorf("%q: err = %v", tc.value, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%q: %v", tc.value, err)
		}
		var got []string
		for _, n := range c.TrustedProxies {
			got = append(got, n.String())
		}
		if strings.Join(got, ",") != tc.want {
			t.Errorf("%q = %q, want %q", tc.value, got, tc.want)
		}
	}
}
