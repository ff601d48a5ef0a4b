//go:build e2e

package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/notes-stack/notes/internal/testing/testutil"
)

// TestDockerTLS deploys through scripts/stack.sh to a tcp:// Docker host that demands a client
// certificate, as `dockerd --tlsverify` does: a TLS front on loopback, run by the test, in front
// of the local daemon's socket, that takes only a certificate of the test's CA. `make up` (its
// preflight, the program's provider and its own docker commands), `make status` and `make down`
// must all pass the stack's notes:dockerTls* secrets on: without them nothing gets through.
func TestDockerTLS(t *testing.T) {
	t.Parallel()
	pki := newDockerPKI(t)
	front := startDockerTLSFront(t, pki)
	if out, err := exec.Command("docker", "-H", "tcp://"+front.addr, "version").CombinedOutput(); err == nil {
		t.Fatalf("docker without the client certificate got through the TLS front:\n%s", out)
	}
	s := newScriptStack(t, "t", map[string]string{
		"notes:dockerHost": "tcp://" + front.addr,
		"notes:httpPort":   strconv.Itoa(freePort(t)),
		"notes:dbPort":     strconv.Itoa(freePort(t)),
		"notes:replicas":   "1",
		"notes:appVersion": "e2e-tls-1",
	})
	for key, value := range map[string]string{"notes:dockerTlsCa": pki.ca, "notes:dockerTlsCert": pki.clientCert, "notes:dockerTlsKey": pki.clientKey} {
		s.mustScript(2*time.Minute, value, nil, "stack.sh", "secret", key)
	}
	t.Cleanup(s.cleanup)
	timed(t, "tls: up", s.up)
	if n := front.conns.Load(); n == 0 {
		t.Fatal("make up reached the daemon without a connection through the TLS front")
	}
	expectStatus(t, &http.Client{Timeout: 10 * time.Second}, s.output("healthUrl"), http.StatusOK)
	// The provider's caMaterial/certMaterial/keyMaterial are secrets: encrypted in the state.
	state := s.run(time.Minute, "stack", "export")
	for _, line := range strings.Split(pki.clientKey, "\n") {
		if len(line) > 20 && !strings.HasPrefix(line, "-----") && strings.Contains(state, line) {
			t.Fatalf("the stack's state holds the client key in clear (%q)", line)
		}
	}

	before := front.conns.Load()
	status := s.ops().must(t, "", nil, "status")
	for _, want := range []string{s.output("databaseContainer"), s.output("nginxContainer"), "healthy"} {
		if !strings.Contains(status, want) {
			t.Errorf("make status does not show %q:\n%s", want, status)
		}
	}
	if front.conns.Load() == before {
		t.Error("make status made no connection through the TLS front")
	}
	if strings.Contains(status, "PRIVATE KEY") {
		t.Errorf("make status printed the client key")
	}
	checkNoKeyLeft(t, pki.clientKey)

	timed(t, "tls: destroy", func() {
		s.mustScript(15*time.Minute, "", nil, "stack.sh", "destroy", "--skip-preview", "--suppress-progress")
	})
	s.destroyed = true
	checkNoKeyLeft(t, pki.clientKey)
	if n := front.refused.Load(); n > 0 {
		t.Logf("the TLS front refused %d handshakes (the check without a certificate above is one)", n)
	}
}

// checkNoKeyLeft fails when a file of the temporary directory (where the scripts and the
// program's commands write the TLS material for the docker CLI) still holds key.
func checkNoKeyLeft(t *testing.T, key string) {
	t.Helper()
	_ = filepath.WalkDir(os.TempDir(), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != "key.pem" {
			return nil
		}
		if b, err := os.ReadFile(path); err == nil && strings.TrimSpace(string(b)) == strings.TrimSpace(key) {
			t.Errorf("%s still holds the client key after the command ended", path)
		}
		return nil
	})
}

// dockerPKI is a CA, a daemon certificate for 127.0.0.1 and a client certificate, PEM.
type dockerPKI struct {
	ca, clientCert, clientKey string
	server                    tls.Certificate
	pool                      *x509.CertPool
}

func newDockerPKI(t *testing.T) dockerPKI {
	t.Helper()
	ca := newTestCA(t)
	server := ca.sign(t, &x509.Certificate{Subject: pkix.Name{CommonName: "127.0.0.1"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	client := ca.sign(t, &x509.Certificate{Subject: pkix.Name{CommonName: "notes e2e deployer"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	return dockerPKI{
		ca: ca.certPEM, clientCert: string(client.certPEM), clientKey: string(client.keyPEM),
		server: tls.Certificate{Certificate: [][]byte{server.der, ca.cert.Raw}, PrivateKey: server.key},
		pool:   pool,
	}
}

// dockerTLSFront is a TLS listener on loopback that passes each connection that presents a
// client certificate of the CA on to the local Docker daemon's socket, byte for byte (so
// attach, exec and build streams work as they do against dockerd's own TLS port).
type dockerTLSFront struct {
	addr           string
	conns, refused atomic.Int64
}

func startDockerTLSFront(t *testing.T, pki dockerPKI) *dockerTLSFront {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{pki.server},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pki.pool,
		MinVersion:   tls.VersionTLS12,
	})
	if err != nil {
		t.Fatal(err)
	}
	f := &dockerTLSFront{addr: ln.Addr().String()}
	testutil.Serve(t, ln, func(c net.Conn) {
		tc := c.(*tls.Conn)
		_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
		if err := tc.Handshake(); err != nil {
			f.refused.Add(1)
			return
		}
		_ = tc.SetDeadline(time.Time{})
		f.conns.Add(1)
		d, err := net.Dial("unix", "/var/run/docker.sock")
		if err != nil {
			return
		}
		defer d.Close()
		testutil.Pipe(tc, d)
	})
	return f
}
