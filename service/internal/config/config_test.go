package config_test

import (
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
