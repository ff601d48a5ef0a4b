//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestACME is tls=acme against a real ACME server, Pebble (Debian's pebble package), on the
// stack's own Docker network: `pulumi up` serves the placeholder; certbot obtains a certificate
// from Pebble over HTTP-01 (pebble-challtestsrv resolves the domain to the nginx container, and
// Pebble validates on its port 80 inside the stack network); nginx picks it up under load with no
// failed request; the chain verifies against Pebble's root, and so does the smoke check of the
// next `pulumi up`; a forced renewal is picked up the same way; with Pebble stopped a renewal
// fails visibly (certbot logs, container unhealthy) while the site keeps its certificate.
// TestACMESwarm is the same on engine swarm.
func TestACME(t *testing.T) {
	t.Parallel()
	testACME(t, false)
}

// acmeNames finds the nginx and certbot containers: on engine swarm the services' tasks (a new
// one after an update).
type acmeNames struct {
	s     *stack
	swarm bool
}

func (n acmeNames) nginx(t *testing.T) string {
	t.Helper()
	if n.swarm {
		return nginxTask(t, n.s)
	}
	return n.s.output("nginxContainer")
}

func (n acmeNames) certbot(t *testing.T) string {
	t.Helper()
	if n.swarm {
		return serviceTask(t, n.s.output("certbotService"))
	}
	return n.s.output("certbotContainer")
}

func testACME(t *testing.T, swarm bool) {
	for _, bin := range []string{"pebble", "pebble-challtestsrv"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s is not installed (apt-get install pebble; make setup does it)", bin)
		}
	}
	var s *stack
	if swarm {
		t.Cleanup(func() { checkNoSwarmObjects(t, s.prefix()) }) // after the stack's own cleanup
	}
	s, _ = devStack(t, "a")
	if swarm {
		useSwarmEngine(s)
	}
	names := acmeNames{s: s, swarm: swarm}
	domain := s.name + ".notes.test"
	httpsPort := freePort(t)
	ca := newTestCA(t)
	s.set("notes:tls", "acme")
	s.set("notes:domain", domain)
	s.set("notes:httpsPort", strconv.Itoa(httpsPort))
	s.set("notes:acmeEmail", "e2e@example.com")
	// Pebble is reached by its alias on the stack network; its TLS certificate comes from ca.
	s.set("notes:acmeServer", "https://pebble:14000/dir")
	s.set("notes:acmeCaBundle", ca.certPEM)
	s.set("notes:backups", "false")
	s.set("notes:rateLimit", "6000000") // see TestDeployLocal

	var upOut string
	timed(t, "up with tls=acme, no ACME server yet", func() { upOut = s.up() })
	if !strings.Contains(upOut, "notes:httpPort") || !strings.Contains(upOut, "port 80") {
		t.Errorf("up does not warn that httpPort is not 80 with tls=acme:\n%s", tail(upOut, 30))
	}
	nginxName, certbotName := names.nginx(t), names.certbot(t)
	netName := s.output("network")
	api := s.output("apiUrl")

	// The placeholder: served, pinned by the test, and not the key the domain used to derive.
	placeholder := []byte(docker(t, "exec", nginxName, "cat", "/etc/nginx/tls-placeholder/fullchain.pem"))
	placeholderPool := x509.NewCertPool()
	if !placeholderPool.AppendCertsFromPEM(placeholder) {
		t.Fatalf("placeholder certificate does not parse:\n%s", placeholder)
	}
	served := servedCert(t, placeholderPool, domain, httpsPort)
	if served == nil || served.Subject.Organization[0] != "notes placeholder (waiting for ACME)" {
		t.Fatalf("nginx does not serve the placeholder: %v", served)
	}
	seed := sha256.Sum256([]byte("notes-stack tls placeholder " + domain))
	if pub, ok := served.PublicKey.(ed25519.PublicKey); !ok || bytes.Equal(pub, ed25519.NewKeyFromSeed(seed[:]).Public().(ed25519.PublicKey)) {
		t.Error("the placeholder key is still derived from the domain")
	}
	expectStatus(t, acmeClient(placeholderPool, httpsPort), s.output("healthUrl"), http.StatusOK)
	checkRedirect(t, domain, s.get("notes:httpPort"), httpsPort)

	// Pebble and its DNS on the stack network; the domain resolves to nginx there.
	nginxIP := docker(t, "inspect", "-f", fmt.Sprintf(`{{(index .NetworkSettings.Networks %q).IPAddress}}`, netName), nginxName)
	pebble := startPebble(t, netName, nginxIP, ca)
	root := pebble.root(t, ca)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(root)
	both := placeholderPool.Clone()
	both.AppendCertsFromPEM(root)

	t.Run("issuance under load", func(t *testing.T) {
		l := newTLSLoad(api, both, httpsPort)
		elapsed := underLoad(t, l, "issuance", func() {
			docker(t, "kill", "--signal", "HUP", certbotName)
		}, func() bool { return servedCert(t, pool, domain, httpsPort) != nil })
		t.Logf("timing: issuance (certbot run now, until nginx serves Pebble's certificate): %v", elapsed)
		names.waitCertbot(t, certbotName, true)
	})
	first := servedCert(t, pool, domain, httpsPort)
	if first == nil {
		t.Fatal("no certificate from Pebble")
	}
	t.Run("nginx and certbot hardened as declared", func(t *testing.T) {
		// nginx (an unprivileged user) reads the key certbot (root, no capability) wrote: the
		// certificate served above proves it; here what they run with.
		seen := checkStackHardened(t, s.name, swarm)
		for _, role := range []string{"nginx", "certbot"} {
			if !seen[role] {
				t.Errorf("no running %s container", role)
			}
		}
	})

	t.Run("forced renewal under load", func(t *testing.T) {
		l := newTLSLoad(api, pool, httpsPort)
		elapsed := underLoad(t, l, "renewal", func() {
			docker(t, "kill", "--signal", "USR1", certbotName)
		}, func() bool {
			c := servedCert(t, pool, domain, httpsPort)
			return c != nil && c.SerialNumber.Cmp(first.SerialNumber) != 0
		})
		t.Logf("timing: forced renewal (until nginx serves the new certificate): %v", elapsed)
		names.waitCertbot(t, certbotName, true)
	})
	current := servedCert(t, pool, domain, httpsPort)

	// The smoke check of a deploy now verifies Pebble's certificate: the bundle names its root.
	s.set("notes:acmeCaBundle", ca.certPEM+string(root))
	s.set("notes:appVersion", "e2e-2")
	timed(t, "up with the real certificate (smoke check verifies it)", func() { upOut = s.up() })
	if !strings.Contains(upOut, "phase smoke:") || strings.Contains(upOut, "insecure") {
		t.Errorf("smoke check output:\n%s", tail(upOut, 30))
	}

	certbotName = names.certbot(t) // a new task on engine swarm: its CA bundle changed
	t.Run("ACME server down", func(t *testing.T) {
		docker(t, "stop", pebble.name)
		docker(t, "kill", "--signal", "USR1", certbotName)
		names.waitCertbot(t, certbotName, false)
		logs, _ := exec.Command("docker", "logs", "--tail", "30", certbotName).CombinedOutput()
		if !strings.Contains(string(logs), "certbot-loop: certbot failed") {
			t.Errorf("certbot logs do not name the failure:\n%s", logs)
		}
		c := servedCert(t, pool, domain, httpsPort)
		if c == nil || c.SerialNumber.Cmp(current.SerialNumber) != 0 {
			t.Errorf("nginx no longer serves the current certificate: %v", c)
		}
		expectStatus(t, acmeClient(pool, httpsPort), s.output("healthUrl"), http.StatusOK)
	})
	timed(t, "destroy", func() {
		pebble.remove()
		s.destroy()
	})
}

// underLoad runs l while it does act and polls done every second (at most 5 minutes); it returns
// how long done took after act and fails the test for any failed request.
func underLoad(t *testing.T, l *load, label string, act func(), done func() bool) time.Duration {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	finished := make(chan struct{})
	go func() { l.run(ctx, 8); close(finished) }()
	time.Sleep(3 * time.Second)
	start := time.Now()
	act()
	for !done() {
		if time.Since(start) > 5*time.Minute {
			cancel()
			<-finished
			t.Fatalf("%s: not done after 5 minutes", label)
		}
		time.Sleep(time.Second)
	}
	elapsed := time.Since(start)
	time.Sleep(5 * time.Second)
	cancel()
	<-finished
	l.report(t, label+" under load")
	l.checkFailures(t)
	l.verifyAcked(t)
	return elapsed
}

// newTLSLoad is the suite's load through nginx's TLS port, trusting only pool.
func newTLSLoad(api string, pool *x509.CertPool, httpsPort int) *load {
	l := newLoad(api, 8)
	l.client = acmeClient(pool, httpsPort)
	return l
}

// acmeClient trusts only pool and reaches every host at 127.0.0.1:httpsPort (the test cannot
// touch DNS).
func acmeClient(pool *x509.CertPool, httpsPort int) *http.Client {
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Client{
		Timeout:       15 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport: &http.Transport{
			TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
			MaxIdleConnsPerHost: 8,
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return dialer.DialContext(ctx, network, net.JoinHostPort("127.0.0.1", strconv.Itoa(httpsPort)))
			},
		},
	}
}

// servedCert is the leaf nginx serves for domain when it verifies against pool, else nil.
func servedCert(t *testing.T, pool *x509.CertPool, domain string, httpsPort int) *x509.Certificate {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp",
		net.JoinHostPort("127.0.0.1", strconv.Itoa(httpsPort)), &tls.Config{RootCAs: pool, ServerName: domain})
	if err != nil {
		return nil
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0]
}

// checkRedirect: port 80 sends every request to the configured domain, whatever its Host.
func checkRedirect(t *testing.T, domain, httpPort string, httpsPort int) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1:"+httpPort+"/api/notes?limit=1", nil)
	req.Host = "attacker.example"
	resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	want := fmt.Sprintf("https://%s:%d/api/notes?limit=1", domain, httpsPort)
	if resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != want {
		t.Errorf("HTTP with Host attacker.example: %d Location %q, want 308 %q", resp.StatusCode, resp.Header.Get("Location"), want)
	}
}

// waitCertbot waits (at most 2 minutes) until certbot reports its last run as ok or failed: the
// container's health on engine containers, the loop's status file on engine swarm (no
// healthcheck there, see infra/swarm_acme.go).
func (n acmeNames) waitCertbot(t *testing.T, container string, ok bool) {
	t.Helper()
	want := map[bool]string{true: "healthy", false: "unhealthy"}[ok]
	if n.swarm {
		want = map[bool]string{true: "ok", false: "failed"}[ok]
	}
	start := time.Now()
	for {
		var got string
		if n.swarm {
			out, _ := exec.Command("docker", "exec", container, "cat", "/tmp/notes-certbot-status").Output()
			got, _, _ = strings.Cut(string(out), " ")
		} else {
			got = docker(t, "inspect", "-f", "{{.State.Health.Status}}", container)
		}
		if got == want {
			t.Logf("certbot %s %s after %v", container, want, time.Since(start).Round(time.Second))
			return
		}
		if time.Since(start) > 2*time.Minute {
			logs, _ := exec.Command("docker", "logs", "--tail", "30", container).CombinedOutput()
			t.Fatalf("certbot %s is %q after 2 minutes, want %s:\n%s", container, got, want, logs)
		}
		time.Sleep(2 * time.Second)
	}
}

// testCA is a private CA a test makes: it signs Pebble's TLS certificate, so certbot (through
// notes:acmeCaBundle) and the test trust Pebble's API, and the TLS Docker front's certificates
// (TestDockerTLS).
type testCA struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	certPEM string
}

func newTestCA(t *testing.T) testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "notes e2e test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return testCA{cert: cert, key: key, certPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))}
}

// issued is a certificate the CA signed, with its new key.
type issued struct {
	der             []byte
	key             *ecdsa.PrivateKey
	certPEM, keyPEM []byte // the key as PKCS #8
}

// sign issues a certificate for a new key from tmpl (subject, names, usages); the serial number
// and a day's validity are set here.
func (ca testCA) sign(t *testing.T, tmpl *x509.Certificate) issued {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if tmpl.SerialNumber, err = rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 63)); err != nil {
		t.Fatal(err)
	}
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return issued{der: der, key: key, certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8})}
}

// issue writes a server certificate for names, signed by the CA, and its key into dir.
func (ca testCA) issue(t *testing.T, dir string, names ...string) {
	t.Helper()
	c := ca.sign(t, &x509.Certificate{
		Subject:     pkix.Name{CommonName: names[0]},
		DNSNames:    names,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	for name, b := range map[string][]byte{"cert.pem": c.certPEM, "key.pem": c.keyPEM} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// pebbleServer is Pebble and pebble-challtestsrv in one container on a stack's network, under
// the alias "pebble", with its management API published on a loopback port.
type pebbleServer struct {
	name     string
	mgmtPort int
	remove   func()
}

// startPebble runs the host's pebble binaries in a container of the certbot image (Debian, the
// same libc) on network, with DNS that answers nginxIP for every name.
func startPebble(t *testing.T, network, nginxIP string, ca testCA) *pebbleServer {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ca.issue(t, dir, "pebble")
	conf, _ := json.Marshal(map[string]any{"pebble": map[string]any{
		"listenAddress":           "0.0.0.0:14000",
		"managementListenAddress": "0.0.0.0:15000",
		"certificate":             "/pebble/cert.pem",
		"privateKey":              "/pebble/key.pem",
		// HTTP-01 is validated on nginx's container port, inside the stack network.
		"httpPort":                       80,
		"tlsPort":                        443,
		"ocspResponderURL":               "",
		"externalAccountBindingRequired": false,
	}})
	if err := os.WriteFile(filepath.Join(dir, "config.json"), conf, 0o644); err != nil {
		t.Fatal(err)
	}
	p := &pebbleServer{name: "e2e-pebble-" + randomSuffix(t), mgmtPort: freePort(t)}
	script := `pebble-challtestsrv -defaultIPv4 "$1" -defaultIPv6 "" -dns01 127.0.0.1:8053 -http01 "" -https01 "" -tlsalpn01 "" -management 127.0.0.1:8055 &
exec pebble -config /pebble/config.json -dnsserver 127.0.0.1:8053`
	docker(t, "run", "-d", "--name", p.name, "--network", network, "--network-alias", "pebble",
		"-p", fmt.Sprintf("127.0.0.1:%d:15000", p.mgmtPort),
		// No random sleep before a validation, no rejected nonces: the test measures the stack.
		"-e", "PEBBLE_VA_NOSLEEP=1", "-e", "PEBBLE_WFE_NONCEREJECT=0",
		"-v", "/usr/bin/pebble:/usr/local/bin/pebble:ro",
		"-v", "/usr/bin/pebble-challtestsrv:/usr/local/bin/pebble-challtestsrv:ro",
		"-v", dir+":/pebble:ro",
		"--entrypoint", "/bin/sh", "certbot/certbot:v3.0.1", "-c", script, "sh", nginxIP)
	p.remove = func() { exec.Command("docker", "rm", "-f", p.name).Run() }
	// Before the stack's cleanup, which removes the network this container is on.
	t.Cleanup(p.remove)
	return p
}

// root is the certificate Pebble issues under (made when it starts), from its management API.
func (p *pebbleServer) root(t *testing.T, ca testCA) []byte {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "pebble"}}}
	url := fmt.Sprintf("https://127.0.0.1:%d/roots/0", p.mgmtPort)
	start := time.Now()
	for {
		resp, err := c.Get(url)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && bytes.Contains(body, []byte("BEGIN CERTIFICATE")) {
				return body
			}
			err = fmt.Errorf("status %d: %.200s", resp.StatusCode, body)
		}
		if time.Since(start) > time.Minute {
			logs, _ := exec.Command("docker", "logs", "--tail", "30", p.name).CombinedOutput()
			t.Fatalf("Pebble's root from %s: %v\n%s", url, err, logs)
		}
		time.Sleep(time.Second)
	}
}
