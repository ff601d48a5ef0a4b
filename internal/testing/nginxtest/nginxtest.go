// Package nginxtest runs a real nginx from a rendered nginx.Config for tests: a private prefix
// directory, free loopback ports, an unprivileged process (when the test runs as root, nginx runs
// as nobody), readiness on /nginx-health, reload and stop.
//
//	h := nginxtest.New(t)                 // skips the test when no nginx binary is found
//	cfg := h.Config(nginx.Defaults())     // loopback ports and paths inside the prefix
//	cfg.Upstreams = []string{addr1, addr2}
//	h.Start(cfg)                          // render, nginx -t, start, wait until ready
//	resp, _ := http.Get(h.URL("/api/notes"))
//
// The nginx binary is $NGINX_BIN, else "nginx" on PATH, else /usr/sbin/nginx.
package nginxtest

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/notes-stack/notes/internal/testing/testutil"
	"github.com/notes-stack/notes/nginx"
)

// Binary returns the path of the nginx binary, or an error when none is installed.
func Binary() (string, error) {
	if p := os.Getenv("NGINX_BIN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("NGINX_BIN: %w", err)
		}
		return p, nil
	}
	if p, err := exec.LookPath("nginx"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("no nginx binary: set NGINX_BIN or install nginx (Debian: apt-get install nginx-light)")
}

// Harness is one nginx instance under a private prefix.
type Harness struct {
	t      testing.TB
	Bin    string
	Prefix string // root of everything: conf/, logs, temp, webroot, static
	Conf   string // configuration directory (what /etc/nginx is in the container)
	// HTTPPort and HTTPSPort are free loopback ports chosen by New.
	HTTPPort, HTTPSPort int
	// CertPool trusts the certificate made by UseSelfSignedTLS.
	CertPool *x509.CertPool

	cred   *syscall.Credential // nil when not root
	uid    int
	gid    int
	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{}
	waitEr error
}

// New creates a harness; it skips the test when no nginx binary is found.
func New(t testing.TB) *Harness {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		t.Skipf("skipping: %v", err)
	}
	prefix, err := os.MkdirTemp("", "nginxtest-")
	if err != nil {
		t.Fatal(err)
	}
	h := &Harness{t: t, Bin: bin, Prefix: prefix, Conf: filepath.Join(prefix, "conf"), uid: -1, gid: -1}
	t.Cleanup(func() {
		h.Stop()
		if !t.Failed() || os.Getenv("NGINXTEST_KEEP") == "" {
			os.RemoveAll(prefix)
		} else {
			t.Logf("nginxtest: kept %s", prefix)
		}
	})
	if os.Geteuid() == 0 {
		// nginx as root would switch workers to "nobody" and need the user directive; run the
		// whole process unprivileged instead, as CI and developers do.
		uid, gid := 65534, 65534
		if u, err := user.Lookup("nobody"); err == nil {
			uid, _ = strconv.Atoi(u.Uid)
			gid, _ = strconv.Atoi(u.Gid)
		}
		h.uid, h.gid = uid, gid
		h.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	for _, d := range []string{h.Conf, h.path("tmp"), h.path("acme"), h.path("static"), h.path("tls")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	mime := []byte("types {\n    text/html html;\n    text/css css;\n    application/javascript js;\n    application/json json;\n    text/plain txt;\n}\n")
	if b, err := os.ReadFile("/etc/nginx/mime.types"); err == nil {
		mime = b
	}
	h.write(filepath.Join(h.Conf, "mime.types"), mime)
	h.HTTPPort, h.HTTPSPort = FreePort(t), FreePort(t)
	return h
}

func (h *Harness) path(elem ...string) string {
	return filepath.Join(append([]string{h.Prefix}, elem...)...)
}

// Path returns a path inside the prefix.
func (h *Harness) Path(elem ...string) string { return h.path(elem...) }

// Config adapts cfg to the harness: loopback ports, no user directive, pid, temp, webroot,
// static and log paths inside the prefix. Logs keep their defaults (/dev/stdout, /dev/stderr):
// the harness points nginx's stdout and stderr at files (see AccessLog and ErrorLog).
func (h *Harness) Config(cfg nginx.Config) nginx.Config {
	cfg.ListenAddress = "127.0.0.1"
	cfg.ListenIPv6 = false
	cfg.HTTPPort = h.HTTPPort
	cfg.HTTPSPort = h.HTTPSPort
	cfg.User = ""
	cfg.WorkerProcesses = 2
	cfg.PIDFile = h.path("nginx.pid")
	cfg.TempDir = h.path("tmp")
	cfg.ACMEWebroot = h.path("acme")
	if cfg.StaticDir != "" {
		cfg.StaticDir = h.path("static")
	}
	cfg.MimeTypes = "mime.types"
	return cfg
}

// UseSelfSignedTLS writes a certificate for names into the prefix, points cfg at it and makes
// CertPool trust it.
func (h *Harness) UseSelfSignedTLS(cfg nginx.Config, mode nginx.TLSMode, names ...string) nginx.Config {
	h.t.Helper()
	certPEM, keyPEM, err := nginx.SelfSignedCertificate(names, 24*time.Hour)
	if err != nil {
		h.t.Fatal(err)
	}
	cfg.TLS.Mode = mode
	cfg.TLS.CertFile = h.path("tls", "cert.pem")
	cfg.TLS.KeyFile = h.path("tls", "key.pem")
	h.write(cfg.TLS.CertFile, certPEM)
	h.write(cfg.TLS.KeyFile, keyPEM)
	h.CertPool = x509.NewCertPool()
	h.CertPool.AppendCertsFromPEM(certPEM)
	return cfg
}

// WriteFile writes a file inside the prefix (readable by nginx).
func (h *Harness) WriteFile(rel string, data []byte) string {
	p := h.path(rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		h.t.Fatal(err)
	}
	h.write(p, data)
	return p
}

func (h *Harness) write(p string, data []byte) {
	h.t.Helper()
	if err := os.WriteFile(p, data, 0o644); err != nil {
		h.t.Fatal(err)
	}
}

// Install renders cfg into the configuration directory.
func (h *Harness) Install(cfg nginx.Config) {
	h.t.Helper()
	files, err := nginx.Render(cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	for name, data := range files {
		p := filepath.Join(h.Conf, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			h.t.Fatal(err)
		}
		h.write(p, data)
	}
	h.chown()
}

// chown hands the prefix to the unprivileged user nginx runs as.
func (h *Harness) chown() {
	if h.cred == nil {
		return
	}
	filepath.WalkDir(h.Prefix, func(p string, d os.DirEntry, err error) error {
		if err == nil {
			os.Lchown(p, h.uid, h.gid)
		}
		return nil
	})
}

func (h *Harness) command(args ...string) *exec.Cmd {
	args = append([]string{"-p", h.Prefix + "/", "-c", filepath.Join(h.Conf, "nginx.conf")}, args...)
	cmd := exec.Command(h.Bin, args...)
	if h.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: h.cred}
	}
	return cmd
}

// Test installs cfg and runs nginx -t; it returns nginx's output and an error when the test fails.
func (h *Harness) Test(cfg nginx.Config) (string, error) {
	h.t.Helper()
	h.Install(cfg)
	return h.run("-t")
}

// run runs nginx with args and returns its combined output. The output goes through a file the
// unprivileged user owns: nginx opens /dev/stderr, which it may not reopen on a root-owned pipe.
func (h *Harness) run(args ...string) (string, error) {
	f := h.openLog("cmd.out")
	defer f.Close()
	f.Truncate(0)
	cmd := h.command(args...)
	cmd.Stdout, cmd.Stderr = f, f
	err := cmd.Run()
	b, _ := os.ReadFile(f.Name())
	return string(b), err
}

// Start installs cfg, checks it with nginx -t, starts nginx in the foreground and waits until
// /nginx-health answers on the HTTP port.
func (h *Harness) Start(cfg nginx.Config) {
	h.t.Helper()
	if out, err := h.Test(cfg); err != nil {
		h.t.Fatalf("nginx -t: %v\n%s", err, out)
	}
	stdout := h.openLog("stdout.log")
	stderr := h.openLog("stderr.log")
	defer stdout.Close()
	defer stderr.Close()
	cmd := h.command("-g", "daemon off; master_process on;")
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		h.t.Fatalf("start nginx: %v", err)
	}
	h.mu.Lock()
	h.cmd, h.done = cmd, make(chan struct{})
	h.mu.Unlock()
	go func() {
		err := cmd.Wait()
		h.mu.Lock()
		h.waitEr = err
		h.mu.Unlock()
		close(h.done)
	}()
	deadline := time.Now().Add(10 * time.Second)
	client := &http.Client{Timeout: time.Second}
	for {
		select {
		case <-h.done:
			h.t.Fatalf("nginx exited during start: %v\n%s", h.waitEr, h.ErrorLog())
		default:
		}
		resp, err := client.Get(h.HTTPURL("/nginx-health"))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("nginx not ready after 10s: %v\n%s", err, h.ErrorLog())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (h *Harness) openLog(name string) *os.File {
	f, err := os.OpenFile(h.path(name), os.O_CREATE|os.O_RDWR|os.O_APPEND, 0o644)
	if err != nil {
		h.t.Fatal(err)
	}
	if h.cred != nil {
		f.Chown(h.uid, h.gid)
	}
	return f
}

// Reload installs cfg and applies it the way the infra does: nginx -t && nginx -s reload.
// It returns once the master has started new workers (the old ones finish gracefully).
func (h *Harness) Reload(cfg nginx.Config) {
	h.t.Helper()
	before := h.workers()
	if out, err := h.Test(cfg); err != nil {
		h.t.Fatalf("nginx -t: %v\n%s", err, out)
	}
	if out, err := h.run("-s", "reload"); err != nil {
		h.t.Fatalf("nginx -s reload: %v\n%s", err, out)
	}
	// Wait until a worker that did not exist before is running.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for w := range h.workers() {
			if !before[w] {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	h.t.Fatalf("nginx -s reload: no new worker after 10s\n%s", h.ErrorLog())
}

// workers returns the pids of the master's children.
func (h *Harness) workers() map[int]bool {
	h.mu.Lock()
	cmd := h.cmd
	h.mu.Unlock()
	out := map[int]bool{}
	if cmd == nil || cmd.Process == nil {
		return out
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", cmd.Process.Pid, cmd.Process.Pid))
	if err != nil {
		return out
	}
	for _, f := range strings.Fields(string(b)) {
		if n, err := strconv.Atoi(f); err == nil {
			out[n] = true
		}
	}
	return out
}

// Stop shuts nginx down gracefully (SIGQUIT, like the image's STOPSIGNAL) and waits.
func (h *Harness) Stop() {
	h.mu.Lock()
	cmd, done := h.cmd, h.done
	h.cmd = nil
	h.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

// AccessLog returns what nginx wrote to stdout (the JSON access log with the default config).
func (h *Harness) AccessLog() []byte { b, _ := os.ReadFile(h.path("stdout.log")); return b }

// ErrorLog returns what nginx wrote to stderr.
func (h *Harness) ErrorLog() string { b, _ := os.ReadFile(h.path("stderr.log")); return string(b) }

// WaitAccessLog waits until the access log contains s (nginx writes the line after the response).
func (h *Harness) WaitAccessLog(s string) ([]byte, bool) {
	deadline := time.Now().Add(3 * time.Second)
	for {
		b := h.AccessLog()
		if bytes.Contains(b, []byte(s)) || time.Now().After(deadline) {
			return b, bytes.Contains(b, []byte(s))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// HTTPURL is http://127.0.0.1:HTTPPort + path.
func (h *Harness) HTTPURL(path string) string {
	return "http://127.0.0.1:" + strconv.Itoa(h.HTTPPort) + path
}

// HTTPSURL is https://127.0.0.1:HTTPSPort + path.
func (h *Harness) HTTPSURL(path string) string {
	return "https://127.0.0.1:" + strconv.Itoa(h.HTTPSPort) + path
}

// TLSClient returns a client that trusts CertPool, sends serverName as SNI and does not follow
// redirects.
func (h *Harness) TLSClient(serverName string) *http.Client {
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: h.CertPool, ServerName: serverName},
			ForceAttemptHTTP2: true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	port, err := testutil.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return port
}
