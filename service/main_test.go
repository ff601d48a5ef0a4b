package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/notes-stack/notes/internal/testing/pgtest"
	"github.com/notes-stack/notes/internal/testing/testutil"
	"github.com/notes-stack/notes/service/internal/quiesce"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// runCmd runs a subcommand to completion.
func runCmd(t *testing.T, env map[string]string, args ...string) (string, string, error) {
	t.Helper()
	var out, errb testutil.SyncBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err := run(ctx, append([]string{"notes"}, args...), testutil.Getenv(env), &out, &errb)
	return out.String(), errb.String(), err
}

type service struct {
	base   string
	cancel context.CancelFunc
	done   chan error
	logs   *testutil.SyncBuffer
}

// startService runs "serve" in the background and waits for /healthz.
func startService(t *testing.T, env map[string]string) *service {
	t.Helper()
	port, err := testutil.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	full := map[string]string{"HTTP_ADDR": "127.0.0.1:" + strconv.Itoa(port), "DRAIN_DELAY": "0s"}
	for k, v := range env {
		full[k] = v
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &service{base: "http://" + full["HTTP_ADDR"], cancel: cancel, done: make(chan error, 1), logs: &testutil.SyncBuffer{}}
	go func() { s.done <- run(ctx, []string{"notes"}, testutil.Getenv(full), s.logs, s.logs) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-s.done:
		case <-time.After(30 * time.Second):
			t.Error("service did not stop")
		}
	})
	testutil.WaitStatus(t, s.base+"/healthz", 200, 10*time.Second)
	return s
}

func migrated(t *testing.T, dsn string) {
	t.Helper()
	if _, stderr, err := runCmd(t, map[string]string{"DATABASE_URL": dsn}, "migrate", "up"); err != nil {
		t.Fatalf("migrate up: %v %s", err, stderr)
	}
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"serve", "--help"}, {"migrate", "--help"}, {"seed", "--help"}, {"healthcheck", "--help"}} {
		out, errOut, err := runCmd(t, nil, args...)
		if err != nil {
			t.Errorf("%v: %v", args, err)
		}
		if !strings.Contains(out+errOut, "Usage") {
			t.Errorf("%v: no usage printed", args)
		}
	}
}

func TestUsageAndConfigErrorsExit2(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		wantMsg string
	}{
		{"unknown command", nil, []string{"frobnicate"}, "frobnicate"},
		{"bad flag", nil, []string{"seed", "--nope"}, "nope"},
		{"migrate no action", nil, []string{"migrate"}, "migrate"},
		{"migrate bad action", nil, []string{"migrate", "sideways"}, "sideways"},
		{"seed bad count", nil, []string{"seed", "--count", "0"}, "--count"},
		{"serve bad max conns", map[string]string{"DB_MAX_CONNS": "many"}, []string{"serve"}, "DB_MAX_CONNS"},
		{"serve bad addr", map[string]string{"HTTP_ADDR": "nowhere"}, nil, "HTTP_ADDR"},
		{"serve bad url", map[string]string{"DATABASE_URL": "postgres://u:pw-secret@h/db?sslmode=maybe"}, nil, "DATABASE_URL"},
		{"seed bad pool parameter", map[string]string{"DATABASE_URL": "postgres://u:pw-secret@h/db?pool_max_conns=many"}, []string{"seed"}, "DATABASE_URL"},
		{"migrate role without password", map[string]string{"DATABASE_URL": "postgres://u@h/db", "APP_DB_ROLE": "app"}, []string{"migrate", "up"}, "APP_DB_PASSWORD"},
		{"migrate reserved role", map[string]string{"DATABASE_URL": "postgres://u@h/db", "APP_DB_ROLE": "pg_x", "APP_DB_PASSWORD": "p"}, []string{"migrate", "up"}, "APP_DB_ROLE"},
		{"serve url and url file", map[string]string{"DATABASE_URL": "postgres://u:pw-secret@h/db", "DATABASE_URL_FILE": "/nonexistent"}, nil, "DATABASE_URL_FILE"},
		{"serve missing url file", map[string]string{"DATABASE_URL_FILE": "/nonexistent/url"}, nil, "/nonexistent/url"},
		{"serve bad revision", map[string]string{"DATABASE_URL": "postgres://u@h/db", "NOTES_REVISION": "a b"}, nil, "NOTES_REVISION"},
		{"migrate missing password file", map[string]string{"DATABASE_URL": "postgres://u@h/db", "APP_DB_ROLE": "app", "APP_DB_PASSWORD_FILE": "/nonexistent/pw"}, []string{"migrate", "up"}, "APP_DB_PASSWORD_FILE"},
		{"seed bad timeout", map[string]string{"SHUTDOWN_TIMEOUT": "forever"}, []string{"seed", "--count", "1"}, "SHUTDOWN_TIMEOUT"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := runCmd(t, tc.env, tc.args...)
			if err == nil || exitCode(err) != 2 {
				t.Fatalf("err = %v (exit %d), want exit 2", err, exitCode(err))
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("error %q does not mention %s", err, tc.wantMsg)
			}
			if strings.Contains(err.Error(), "pw-secret") {
				t.Errorf("password in error: %q", err)
			}
		})
	}
}

func TestMigrateSeedServe(t *testing.T) {
	t.Parallel()
	dsn := pgtest.NewDatabase(t)
	env := map[string]string{"DATABASE_URL": dsn}
	migrated(t, dsn)
	out, _, err := runCmd(t, env, "migrate", "status")
	if err != nil || strings.Count(out, "applied") < 2 {
		t.Fatalf("status: %v\n%s", err, out)
	}
	out, _, err = runCmd(t, env, "seed", "--count", "2500")
	if err != nil || !strings.Contains(out, "seeded 2500 notes") {
		t.Fatalf("seed: %v %s", err, out)
	}
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	conn.QueryRow(context.Background(), "SELECT count(*) FROM notes").Scan(&n)
	if n != 2500 {
		t.Fatalf("count = %d", n)
	}

	s := startService(t, env)
	testutil.WaitStatus(t, s.base+"/readyz", 200, 10*time.Second)
	res, err := http.Get(s.base + "/api/notes?limit=3")
	if err != nil {
		t.Fatal(err)
	}
	var page []struct{ Title string }
	json.NewDecoder(res.Body).Decode(&page)
	res.Body.Close()
	if len(page) != 3 || page[0].Title != "Seeded note 2500" || res.Header.Get("Link") == "" {
		t.Fatalf("page = %+v, Link %q", page, res.Header.Get("Link"))
	}

	port := strings.TrimPrefix(s.base, "http://127.0.0.1:")
	if _, _, err := runCmd(t, map[string]string{"HTTP_ADDR": ":" + port}, "healthcheck"); err != nil {
		t.Errorf("healthcheck: %v", err)
	}
	if _, _, err := runCmd(t, nil, "healthcheck", "--url", s.base+"/nope"); exitCode(err) != 1 {
		t.Errorf("healthcheck on 404: %v", err)
	}
	free, _ := testutil.FreePort()
	if _, _, err := runCmd(t, nil, "healthcheck", "--url", fmt.Sprintf("http://127.0.0.1:%d/healthz", free)); exitCode(err) != 1 {
		t.Errorf("healthcheck on closed port: %v", err)
	}
	if strings.Contains(s.logs.String(), pgtest.Shared(t).Password) {
		t.Error("service logs contain the database password")
	}

	if _, _, err := runCmd(t, env, "migrate", "down"); err != nil {
		t.Fatal(err)
	}
	out, _, _ = runCmd(t, env, "migrate", "status")
	if !strings.Contains(out, "pending") {
		t.Errorf("status after down:\n%s", out)
	}
}

// appRoleName returns a fresh role name for the app role and drops that role (created by
// the test's migrate up) at cleanup.
func appRoleName(t *testing.T, dsn string) string {
	t.Helper()
	role := "notes_app_" + strconv.FormatInt(time.Now().UnixNano(), 36)
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), dsn)
		if err == nil {
			c.Exec(context.Background(), "DROP OWNED BY "+role)
			c.Exec(context.Background(), "DROP ROLE "+role)
			c.Close(context.Background())
		}
	})
	return role
}

func TestMigrateUpWithAppRole(t *testing.T) {
	t.Parallel()
	dsn := pgtest.NewDatabase(t)
	role := appRoleName(t, dsn)
	env := map[string]string{"DATABASE_URL": dsn, "APP_DB_ROLE": role, "APP_DB_PASSWORD": "o'really"}
	for i := 0; i < 2; i++ {
		if _, stderr, err := runCmd(t, env, "migrate", "up"); err != nil {
			t.Fatalf("migrate up #%d: %v %s", i, err, stderr)
		}
	}
	cfg, _ := pgx.ParseConfig(dsn)
	cfg.User, cfg.Password = role, "o'really"
	appDSN := fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/%s?sslmode=disable", role, "o%27really", cfg.Port, cfg.Database)
	// The service works as the app role.
	s := startService(t, map[string]string{"DATABASE_URL": appDSN})
	testutil.WaitStatus(t, s.base+"/readyz", 200, 10*time.Second)
	res, err := http.Post(s.base+"/api/notes", "application/json", strings.NewReader(`{"title":"as app"}`))
	if err != nil || res.StatusCode != 201 {
		t.Fatalf("POST as app role: %v %v", err, res)
	}
	res.Body.Close()
}

// secretFile writes a secret the way the deploy does: its own file, mode
// 0400, with a trailing newline.
func secretFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte(content+"\n"), 0o400); err != nil {
		t.Fatal(err)
	}
	return p
}

// waitReady polls /readyz until 200 or the timeout.
func waitReady(base string, timeout time.Duration) bool {
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if res, err := http.Get(base + "/readyz"); err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return true
			}
		}
	}
	return false
}

// TestSecretsFromFiles: migrate up creates the app role from
// DATABASE_URL_FILE and APP_DB_PASSWORD_FILE; serve connects as that role
// from DATABASE_URL_FILE, and from PG* with PGPASSFILE; each answers with
// its NOTES_REVISION.
func TestSecretsFromFiles(t *testing.T) {
	t.Parallel()
	dsn := pgtest.NewDatabase(t)
	role := appRoleName(t, dsn)
	const password = "fi:le's @secret"
	env := map[string]string{"DATABASE_URL_FILE": secretFile(t, dsn), "APP_DB_ROLE": role, "APP_DB_PASSWORD_FILE": secretFile(t, password)}
	if _, stderr, err := runCmd(t, env, "migrate", "up"); err != nil {
		t.Fatalf("migrate up: %v %s", err, stderr)
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	appDSN := (&url.URL{Scheme: "postgres", User: url.UserPassword(role, password), Host: fmt.Sprintf("127.0.0.1:%d", cfg.Port),
		Path: cfg.Database, RawQuery: "sslmode=disable"}).String()
	passfile := secretFile(t, fmt.Sprintf("127.0.0.1:%d:%s:%s:%s", cfg.Port, cfg.Database, role,
		strings.NewReplacer(`\`, `\\`, `:`, `\:`).Replace(password)))
	tests := []struct {
		name string
		env  map[string]string
	}{
		{"DATABASE_URL_FILE", map[string]string{"DATABASE_URL_FILE": secretFile(t, appDSN), "NOTES_REVISION": "rev-file"}},
		{"PGPASSFILE", map[string]string{"PGHOST": "127.0.0.1", "PGPORT": strconv.Itoa(int(cfg.Port)), "PGDATABASE": cfg.Database,
			"PGUSER": role, "PGSSLMODE": "disable", "PGPASSFILE": passfile, "NOTES_REVISION": "rev-passfile"}},
	}
	for _, tc := range tests {
		s := startService(t, tc.env)
		if !waitReady(s.base, 10*time.Second) {
			t.Fatalf("%s: not ready:\n%s", tc.name, s.logs.String())
		}
		res, err := http.Post(s.base+"/api/notes", "application/json", strings.NewReader(`{"title":"from a file"}`))
		if err != nil {
			t.Fatalf("%s: POST: %v", tc.name, err)
		}
		res.Body.Close()
		if res.StatusCode != 201 || res.Header.Get("X-Notes-Revision") != tc.env["NOTES_REVISION"] {
			t.Errorf("%s: POST = %d, X-Notes-Revision %q", tc.name, res.StatusCode, res.Header.Get("X-Notes-Revision"))
		}
		if logs := s.logs.String(); strings.Contains(logs, password) || strings.Contains(logs, url.QueryEscape(password)) || strings.Contains(logs, url.PathEscape(password)) {
			t.Errorf("%s: the password is in the log:\n%s", tc.name, s.logs.String())
		}
	}
}

// TestReadinessFollowsDatabase: the service starts while Postgres is down,
// becomes ready when it comes up, unready when it stops, ready again after.
// /startedz (the container healthcheck) is 503 until the database answered
// once and 200 from then on, through every later outage.
func TestReadinessFollowsDatabase(t *testing.T) {
	t.Parallel()
	pg := pgtest.NewServer(t)
	dsn := pg.NewDatabase(t)
	migrated(t, dsn)
	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	s := startService(t, map[string]string{"DATABASE_URL": dsn})
	if got := testutil.Status(s.base + "/readyz"); got != 503 {
		t.Fatalf("readyz with DB down = %d", got)
	}
	if got := testutil.Status(s.base + "/api/notes"); got != 503 {
		t.Fatalf("list with DB down = %d", got)
	}
	if got := testutil.Status(s.base + "/healthz"); got != 200 {
		t.Fatalf("healthz with DB down = %d", got)
	}
	if got := testutil.Status(s.base + "/startedz"); got != 503 {
		t.Fatalf("startedz before the database ever answered = %d", got)
	}
	for round := 0; round < 2; round++ {
		if err := pg.Start(); err != nil {
			t.Fatal(err)
		}
		testutil.WaitStatus(t, s.base+"/readyz", 200, 20*time.Second)
		testutil.WaitStatus(t, s.base+"/api/notes", 200, 5*time.Second)
		if err := pg.Stop(); err != nil {
			t.Fatal(err)
		}
		testutil.WaitStatus(t, s.base+"/readyz", 503, 20*time.Second)
		if got := testutil.Status(s.base + "/startedz"); got != 200 {
			t.Fatalf("startedz during an outage after the first start = %d, want 200", got)
		}
	}
	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	testutil.WaitStatus(t, s.base+"/readyz", 200, 20*time.Second)
}

// TestGracefulShutdown holds requests in flight (blocked on a table lock),
// cancels run's context as SIGTERM would, and checks that /readyz turns 503
// during the drain, every in-flight request completes with 200 and run
// returns nil.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	dsn := pgtest.NewDatabase(t)
	migrated(t, dsn)
	ctx := context.Background()
	port, _ := testutil.FreePort()
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	env := map[string]string{"DATABASE_URL": dsn, "HTTP_ADDR": fmt.Sprintf("127.0.0.1:%d", port),
		"DRAIN_DELAY": "1s", "SHUTDOWN_TIMEOUT": "30s", "DB_MAX_CONNS": "4"}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	logs := &testutil.SyncBuffer{}
	go func() { done <- run(runCtx, []string{"notes", "serve"}, testutil.Getenv(env), logs, logs) }()
	testutil.WaitStatus(t, base+"/readyz", 200, 10*time.Second)

	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	tx, err := admin.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "LOCK TABLE notes IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}

	const inFlight = 12 // more than DB_MAX_CONNS: some wait for the pool too
	results := make(chan int, inFlight)
	client := &http.Client{Timeout: time.Minute}
	for i := 0; i < inFlight; i++ {
		go func(i int) {
			var res *http.Response
			var err error
			if i%2 == 0 {
				res, err = client.Get(base + "/api/notes")
			} else {
				res, err = client.Post(base+"/api/notes", "application/json", strings.NewReader(`{"title":"in flight"}`))
			}
			if err != nil {
				results <- -1
				return
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			results <- res.StatusCode
		}(i)
	}
	// Wait until the requests are really in the server (blocked on the lock
	// or on the pool).
	deadline := time.Now().Add(10 * time.Second)
	for {
		var waiting int
		admin2, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		admin2.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'").Scan(&waiting)
		admin2.Close(ctx)
		if waiting >= 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d requests blocked", waiting)
		}
		time.Sleep(50 * time.Millisecond)
	}

	cancel() // SIGTERM
	testutil.WaitStatus(t, base+"/readyz", 503, 900*time.Millisecond)
	if res, err := http.Get(base + "/healthz"); err != nil {
		t.Errorf("healthz during drain: %v", err)
	} else {
		res.Body.Close()
		if res.StatusCode != 200 || !res.Close {
			t.Errorf("healthz during drain = %d, Connection: close %v; want 200 closing the connection", res.StatusCode, res.Close)
		}
	}
	time.Sleep(1500 * time.Millisecond) // past the drain: listener closed, requests still blocked
	select {
	case err := <-done:
		t.Fatalf("run returned while requests were in flight: %v", err)
	default:
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < inFlight; i++ {
		select {
		case code := <-results:
			if code != 200 && code != 201 {
				t.Errorf("in-flight request answered %d", code)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("in-flight request did not finish")
		}
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run = %v, want nil", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not return")
	}
	if testutil.Status(base+"/healthz") != 0 {
		t.Error("listener still open after shutdown")
	}
	if !strings.Contains(logs.String(), "shutdown: done") || (quiesce.Available() == nil && strings.Contains(logs.String(), "without quiescing")) {
		t.Errorf("logs:\n%s", logs.String())
	}
	var n int
	admin.QueryRow(ctx, "SELECT count(*) FROM notes WHERE title = 'in flight'").Scan(&n)
	if n != inFlight/2 {
		t.Errorf("%d in-flight inserts stored, want %d", n, inFlight/2)
	}
}

func TestServeListenError(t *testing.T) {
	// A port in use is an ordinary error (exit 1), not a config error.
	s := startService(t, map[string]string{"DATABASE_URL": "postgres://u@127.0.0.1:1/db"})
	addr := strings.TrimPrefix(s.base, "http://")
	_, _, err := runCmd(t, map[string]string{"HTTP_ADDR": addr, "DATABASE_URL": "postgres://u@127.0.0.1:1/db"})
	if err == nil || exitCode(err) != 1 || errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
}

// TestServeServerLimits: serve's http.Server enforces the header size limit
// and HTTP_READ_TIMEOUT (as the header timeout too).
func TestServeServerLimits(t *testing.T) {
	s := startService(t, map[string]string{"DATABASE_URL": "postgres://u@127.0.0.1:1/db", "HTTP_READ_TIMEOUT": "300ms"})
	req, err := http.NewRequest("GET", s.base+"/healthz", nil)
	if err != nil {
		t.Fatal(err)
	}
	// Well over 64 KiB: net/http enforces the limit only to within its
	// buffer sizes (4 KiB of slack, plus what it read ahead on the connection).
	req.Header.Set("X-Big", strings.Repeat("a", 100<<10))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("100 KiB of headers = %d, want 431", res.StatusCode)
	}

	// A client that never finishes its headers is disconnected.
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n")); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.ReadAll(conn); err != nil {
		t.Errorf("slow headers: connection not closed by the server: %v", err)
	}
}

// TestShutdownLinger: after the drain the process stays for SHUTDOWN_LINGER
// with its listener closed, so connections are refused (a proxy fails over
// at once) while the deploy takes the replica out of the alias.
func TestShutdownLinger(t *testing.T) {
	t.Parallel()
	port, _ := testutil.FreePort()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	env := map[string]string{"DATABASE_URL": "postgres://nobody@127.0.0.1:1/none", "HTTP_ADDR": addr,
		"DRAIN_DELAY": "0s", "SHUTDOWN_LINGER": "3s"}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	logs := &testutil.SyncBuffer{}
	go func() { done <- run(ctx, []string{"notes", "serve"}, testutil.Getenv(env), logs, logs) }()
	testutil.WaitStatus(t, "http://"+addr+"/healthz", 200, 10*time.Second)
	cancel()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), "shutdown: drained") {
		if time.Now().After(deadline) {
			t.Fatalf("no drained line:\n%s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := net.DialTimeout("tcp", addr, time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("while lingering: want connection refused, got %v", err)
	}
	select {
	case err := <-done:
		t.Fatalf("run returned before SHUTDOWN_LINGER passed: %v", err)
	default:
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run = %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not return after the linger")
	}
}

// TestShutdownUnderLoadCutsNothing sends requests on fresh connections (as nginx does without
// upstream keep-alive) while the service drains: every request whose connection was made gets a
// whole answer; only connecting may fail (refused or timed out, which a proxy fails over on).
func TestShutdownUnderLoadCutsNothing(t *testing.T) {
	t.Parallel()
	if err := quiesce.Available(); err != nil {
		t.Skipf("without the listener's SYN filter the kernel resets queued connections at close: %v", err)
	}
	dsn := pgtest.NewDatabase(t)
	migrated(t, dsn)
	port, _ := testutil.FreePort()
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	env := map[string]string{"DATABASE_URL": dsn, "HTTP_ADDR": fmt.Sprintf("127.0.0.1:%d", port),
		"DRAIN_DELAY": "2s", "SHUTDOWN_TIMEOUT": "30s", "SHUTDOWN_LINGER": "2s"}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	logs := &testutil.SyncBuffer{}
	go func() { done <- run(ctx, []string{"notes", "serve"}, testutil.Getenv(env), logs, logs) }()
	testutil.WaitStatus(t, base+"/readyz", 200, 10*time.Second)

	var answered, cut atomic.Int64
	var mu sync.Mutex
	var cuts []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				// A fresh connection per request, and HTTP/1.1 without "Connection: close", as
				// nginx sends to an upstream without keep-alive: the service may keep the
				// connection open after its answer.
				tr := &http.Transport{DialContext: (&net.Dialer{Timeout: 300 * time.Millisecond}).DialContext}
				client := &http.Client{Transport: tr}
				select {
				case <-stop:
					return
				default:
				}
				var res *http.Response
				var err error
				if (i+n)%2 == 0 {
					res, err = client.Get(base + "/api/notes?limit=5")
				} else {
					res, err = client.Post(base+"/api/notes", "application/json", strings.NewReader(`{"title":"drain"}`))
				}
				if err == nil {
					_, err = io.Copy(io.Discard, res.Body)
					res.Body.Close()
				}
				tr.CloseIdleConnections()
				var oe *net.OpError
				switch {
				case err == nil:
					answered.Add(1)
				case errors.As(err, &oe) && oe.Op == "dial":
					time.Sleep(10 * time.Millisecond) // refused or timed out: what a proxy fails over on
				default:
					cut.Add(1)
					mu.Lock()
					cuts = append(cuts, err.Error())
					mu.Unlock()
				}
			}
		}()
	}
	time.Sleep(500 * time.Millisecond)
	cancel()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(logs.String(), "shutdown: drained") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if cut.Load() > 0 {
		t.Fatalf("%d of %d requests cut off after their connection was made, e.g. %s\nlogs:\n%s", cut.Load(), answered.Load()+cut.Load(), cuts[0], logs.String())
	}
	if strings.Contains(logs.String(), "without quiescing") {
		t.Errorf("logs:\n%s", logs.String())
	}
	t.Logf("%d requests answered, 0 cut off", answered.Load())
}
