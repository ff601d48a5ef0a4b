// Package pgtest runs a real, throw-away PostgreSQL server for tests.
//
// It starts postgres from PG_BIN (default /usr/lib/postgresql/15/bin) with
// initdb in a temporary directory, on a free 127.0.0.1 port. Postgres refuses
// to run as root, so when the test runs as root the server runs as the
// unprivileged user "notes-pgtest" (created with useradd when missing).
//
// Typical use, once per test binary:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
//	func TestSomething(t *testing.T) {
//		dsn := pgtest.NewDatabase(t) // fresh database, dropped at cleanup
//		...
//	}
//
// Tests that stop and restart the server use their own with Start/Stop.
package pgtest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver

	"github.com/notes-stack/notes/internal/testing/testutil"
	"github.com/notes-stack/notes/migrations"
)

// DefaultBinDir is where Debian's postgresql-15 package installs its binaries.
const DefaultBinDir = "/usr/lib/postgresql/15/bin"

// User is the unprivileged OS user the server runs as when we are root.
const User = "notes-pgtest"

// errUnavailable is returned by New when the Postgres binaries are absent.
var errUnavailable = errors.New("pgtest: postgres binaries not found")

// Server is one Postgres cluster in a temporary directory.
type Server struct {
	BinDir   string
	Dir      string // temp dir holding the data directory and logs
	Port     int
	Password string // password of the superuser "postgres"

	// Durable keeps fsync and synchronous commit on (set before Start). Off by
	// default for speed, which loses acknowledged commits in a crash (Kill).
	Durable bool

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	cred *syscall.Credential
	uid  int
	gid  int
}

func binDir() string {
	if d := os.Getenv("PG_BIN"); d != "" {
		return d
	}
	return DefaultBinDir
}

// available reports whether initdb and postgres exist.
func available() bool {
	for _, b := range []string{"initdb", "postgres"} {
		if _, err := os.Stat(filepath.Join(binDir(), b)); err != nil {
			return false
		}
	}
	return true
}

// New creates a cluster with initdb (not started yet) on a free port.
func New() (*Server, error) {
	if !available() {
		return nil, fmt.Errorf("%w in %s (install postgresql-15 or set PG_BIN)", errUnavailable, binDir())
	}
	s := &Server{BinDir: binDir(), uid: -1, gid: -1}
	if os.Geteuid() == 0 {
		uid, gid, err := ensureUser(User)
		if err != nil {
			return nil, err
		}
		s.uid, s.gid = uid, gid
		s.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, err
	}
	s.Dir = dir
	if s.uid >= 0 {
		if err := os.Chown(dir, s.uid, s.gid); err != nil {
			s.cleanupDir()
			return nil, err
		}
	}
	s.Password = "pgtest-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	pwfile := filepath.Join(dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(s.Password+"\n"), 0o600); err != nil {
		s.cleanupDir()
		return nil, err
	}
	if s.uid >= 0 {
		_ = os.Chown(pwfile, s.uid, s.gid)
	}
	cmd := exec.Command(filepath.Join(s.BinDir, "initdb"),
		"-D", filepath.Join(dir, "data"), "-U", "postgres", "--pwfile", pwfile,
		"-E", "UTF8", "--locale=C", "--no-sync",
		"--auth-local=trust", "--auth-host=scram-sha-256")
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	if out, err := cmd.CombinedOutput(); err != nil {
		s.cleanupDir()
		return nil, fmt.Errorf("pgtest: initdb: %v\n%s", err, out)
	}
	_ = os.Remove(pwfile)
	port, err := testutil.FreePort()
	if err != nil {
		s.cleanupDir()
		return nil, err
	}
	s.Port = port
	return s, nil
}

// Start creates and starts a server. Close it when done.
func Start() (*Server, error) {
	s, err := New()
	if err != nil {
		return nil, err
	}
	if err := s.Start(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Start starts postgres (again) on s.Port and waits until it accepts connections.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return nil
	}
	logf, err := os.OpenFile(filepath.Join(s.Dir, "postgres.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	args := []string{
		"-D", filepath.Join(s.Dir, "data"),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "port=" + strconv.Itoa(s.Port),
		"-c", "unix_socket_directories=",
		"-c", "max_connections=300",
		"-c", "log_min_messages=warning",
	}
	if !s.Durable {
		args = append(args, "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	}
	cmd := exec.Command(filepath.Join(s.BinDir, "postgres"), args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Pdeathsig: if the test binary dies, take the server down with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred, Pdeathsig: syscall.SIGQUIT, Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("pgtest: start postgres: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
	s.cmd, s.done = cmd, done

	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn, err := pgx.Connect(ctx, s.DSN("postgres"))
		cancel()
		if err == nil {
			conn.Close(context.Background())
			return nil
		}
		select {
		case <-done:
			s.cmd = nil
			log, _ := os.ReadFile(filepath.Join(s.Dir, "postgres.log"))
			return fmt.Errorf("pgtest: postgres exited during start: %s", tail(string(log), 2000))
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pgtest: postgres not ready after 30s: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// PID returns the postmaster's process id, or 0 when it is not running.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Stop shuts the server down (fast shutdown: clients are disconnected) and
// waits for it to exit. The data directory stays, so Start works again.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return nil
	}
	_ = s.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd = nil
	return nil
}

// Kill ends the server as kill -9 of a database container does: SIGKILL to
// the postmaster and every backend at once, so clients' connections break
// without a goodbye and the next Start runs crash recovery.
func (s *Server) Kill() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return nil
	}
	// Backends call setsid, so the postmaster's process group does not hold
	// them: find them by their parent.
	pids := append(children(s.cmd.Process.Pid), s.cmd.Process.Pid)
	for _, pid := range pids {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("pgtest: kill postgres process %d: %w", pid, err)
		}
	}
	<-s.done
	s.cmd = nil
	// A backend that still holds the shared memory makes the next postmaster refuse to start.
	for _, pid := range pids {
		for i := 0; alive(pid); i++ {
			if i == 500 {
				return fmt.Errorf("pgtest: postgres process %d still running 5s after SIGKILL", pid)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return nil
}

// children lists the processes whose parent is pid.
func children(pid int) []int {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var pids []int
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // exited meanwhile
		}
		// "pid (comm) state ppid ...": comm may hold spaces, so split after its ")".
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			child, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
			pids = append(pids, child)
		}
	}
	return pids
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(f) > 0 && f[0] != "Z"
}

// Close stops the server and removes its directory.
func (s *Server) Close() {
	_ = s.Stop()
	s.cleanupDir()
}

func (s *Server) cleanupDir() {
	if s.Dir != "" {
		_ = os.RemoveAll(s.Dir)
	}
}

// DSN returns a superuser connection URL for database db.
func (s *Server) DSN(db string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword("postgres", s.Password),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port)),
		Path:     "/" + db,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

var dbSeq atomic.Int64

// CreateDatabase creates an empty database and returns its name.
func (s *Server) CreateDatabase(ctx context.Context) (string, error) {
	name := fmt.Sprintf("t_%d_%d", os.Getpid(), dbSeq.Add(1))
	conn, err := pgx.Connect(ctx, s.DSN("postgres"))
	if err != nil {
		return "", err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+" TEMPLATE template0"); err != nil {
		return "", err
	}
	return name, nil
}

// DropDatabase drops a database, disconnecting its clients.
func (s *Server) DropDatabase(ctx context.Context, name string) error {
	conn, err := pgx.Connect(ctx, s.DSN("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	return err
}

// NewDatabase creates a fresh database on s for this test, drops it at
// cleanup and returns its superuser DSN.
func (s *Server) NewDatabase(tb testing.TB) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	name, err := s.CreateDatabase(ctx)
	if err != nil {
		tb.Fatalf("pgtest: create database: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.DropDatabase(ctx, name); err != nil {
			tb.Logf("pgtest: drop database %s: %v", name, err)
		}
	})
	return s.DSN(name)
}

// Shared server of this test binary, started by Main.
var (
	shared     *Server
	sharedErr  error
	sharedOnce sync.Once
)

// Main starts the shared server, runs the tests and stops the server. Call
// it from TestMain. When the binaries are absent, tests that ask for a
// database are skipped with the reason; any other start failure fails them.
func Main(m *testing.M) {
	code := m.Run()
	if shared != nil {
		shared.Close()
	}
	os.Exit(code)
}

// Shared returns the test binary's shared server, starting it on first use.
// It skips tb when the Postgres binaries are absent.
func Shared(tb testing.TB) *Server {
	tb.Helper()
	sharedOnce.Do(func() { shared, sharedErr = Start() })
	if errors.Is(sharedErr, errUnavailable) {
		tb.Skipf("skipping: %v", sharedErr)
	}
	if sharedErr != nil {
		tb.Fatalf("pgtest: %v", sharedErr)
	}
	return shared
}

// NewDatabase gives the test its own database on the shared server and
// returns a superuser DSN for it.
func NewDatabase(tb testing.TB) string {
	tb.Helper()
	return Shared(tb).NewDatabase(tb)
}

// NewMigratedDatabase is NewDatabase with every migration of migrations/
// applied: the schema the service runs on.
func NewMigratedDatabase(tb testing.TB) string {
	tb.Helper()
	return Shared(tb).NewMigratedDatabase(tb)
}

// NewMigratedDatabase is NewDatabase on s with every migration applied.
func (s *Server) NewMigratedDatabase(tb testing.TB) string {
	tb.Helper()
	dsn := s.NewDatabase(tb)
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := migrations.Up(ctx, db); err != nil {
		tb.Fatalf("pgtest: migrate: %v", err)
	}
	return dsn
}

// NewServer creates and starts a server owned by this test (for tests that
// stop and restart it); it is closed at cleanup.
func NewServer(tb testing.TB) *Server {
	tb.Helper()
	return newServer(tb, false)
}

// NewDurableServer is NewServer with fsync and synchronous commit on, for
// tests that crash it (Kill) and count the acknowledged writes it kept.
func NewDurableServer(tb testing.TB) *Server {
	tb.Helper()
	return newServer(tb, true)
}

func newServer(tb testing.TB, durable bool) *Server {
	tb.Helper()
	s, err := New()
	if errors.Is(err, errUnavailable) {
		tb.Skipf("skipping: %v", err)
	}
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	s.Durable = durable
	tb.Cleanup(s.Close)
	if err := s.Start(); err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	return s
}

var userMu sync.Mutex

// ensureUser looks the user up and creates it (system user, no login shell,
// no home) when missing.
func ensureUser(name string) (uid, gid int, err error) {
	userMu.Lock()
	defer userMu.Unlock()
	u, err := user.Lookup(name)
	if err != nil {
		var unknown user.UnknownUserError
		if !errors.As(err, &unknown) {
			return 0, 0, fmt.Errorf("pgtest: lookup user %s: %w", name, err)
		}
		// Several test binaries may race here; useradd may also find
		// /etc/passwd locked by another one. Retry, then look up again.
		var out []byte
		var cerr error
		for i := 0; i < 20; i++ {
			out, cerr = exec.Command("useradd", "--system", "--no-create-home", "--user-group",
				"--shell", "/usr/sbin/nologin", name).CombinedOutput()
			if u, err = user.Lookup(name); err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil {
			return 0, 0, fmt.Errorf("pgtest: useradd %s: %v: %s", name, cerr, strings.TrimSpace(string(out)))
		}
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return uid, gid, nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
