//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// devStack makes a stack from Pulumi.dev.yaml on free loopback ports with fresh secrets.
func devStack(t *testing.T, prefix string) (s *stack, secrets []string) {
	t.Helper()
	s = newStack(t, prefix, "Pulumi.dev.yaml")
	s.set("notes:httpPort", strconv.Itoa(freePort(t)))
	s.set("notes:dbPort", strconv.Itoa(freePort(t)))
	s.set("notes:protect", "false")
	s.set("notes:appVersion", "e2e-1")
	dbPassword, appPassword, apiToken := randomSecret(t), randomSecret(t), randomSecret(t)
	s.setSecret("notes:dbPassword", dbPassword)
	s.setSecret("notes:appDbPassword", appPassword)
	s.setSecret("notes:apiToken", apiToken)
	return s, []string{dbPassword, appPassword, apiToken}
}

func TestPreviewDev(t *testing.T) {
	t.Parallel()
	s, _ := devStack(t, "p")
	out := s.run(15*time.Minute, "preview", "--suppress-progress")
	// The preview names every part of the stack: database, migration, replica, proxy and its
	// config, backups and the smoke check.
	for _, want := range []string{
		"docker:index:Container " + s.prefix() + "-db-container create",
		"command:local:Command " + s.prefix() + "-app-migrate create",
		"docker:index:Container " + s.prefix() + "-app-1 create",
		"docker:index:Container " + s.prefix() + "-nginx-container create",
		"command:local:Command " + s.prefix() + "-nginx-config create",
		"docker:index:Container " + s.prefix() + "-backup-container create",
		"command:local:Command " + s.prefix() + "-smoke-check create",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("preview output lacks %q:\n%s", want, tail(out, 60))
		}
	}
}

func TestDeployLocal(t *testing.T) {
	t.Parallel()
	s, secrets := devStack(t, "l")
	s.set("notes:replicas", "2")
	s.set("notes:backups", "true")
	// The load below comes from one address; keep Nginx's per-address write limit in the path
	// but far above what 16 workers send, so a 429 can only mean a broken limiter config.
	s.set("notes:rateLimit", "6000000")

	s.run(15*time.Minute, "preview", "--suppress-progress")
	s.up()
	client := &http.Client{Timeout: 10 * time.Second}

	t.Run("outputs answer", func(t *testing.T) {
		for _, key := range []string{"url", "healthUrl"} {
			expectStatus(t, client, s.output(key), http.StatusOK)
		}
		expectStatus(t, client, s.output("apiUrl"), http.StatusOK)
	})

	api := s.output("apiUrl")
	t.Run("notes through nginx", func(t *testing.T) {
		l := newLoad(api, 1)
		for i := range 5 {
			l.post(context.Background(), fmt.Sprintf("first deploy %d", i))
		}
		if len(l.failures) > 0 || len(l.acked) != 5 {
			t.Fatalf("creating notes: %v", l.failures)
		}
		l.verifyAcked(t)
		l.list(context.Background())
		if len(l.failures) > 0 {
			t.Fatal(l.failures)
		}
	})

	t.Run("a client's X-Forwarded-For is not the logged address", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, s.output("livenessUrl"), nil)
		req.Header.Set("X-Forwarded-For", "6.6.6.6")
		req.Header.Set("X-Request-ID", "e2e-xff-"+s.name)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		time.Sleep(300 * time.Millisecond) // the service's log buffer flushes every 100 ms
		var line string
		for _, name := range s.stringsOutput("replicaNames") {
			for _, l := range strings.Split(docker(t, "logs", name), "\n") {
				if strings.Contains(l, `"request_id":"e2e-xff-`+s.name+`"`) {
					line = l
				}
			}
		}
		if line == "" || strings.Contains(line, "6.6.6.6") || !strings.Contains(line, `"remote_ip":"`) {
			t.Errorf("access log line %q: want the address nginx saw, not the client's header", line)
		}
	})

	t.Run("containers hardened as declared", func(t *testing.T) {
		replicas := s.stringsOutput("replicaNames")
		if len(replicas) != 2 {
			t.Fatalf("replicaNames = %v, want 2", replicas)
		}
		for _, name := range replicas {
			checkHardened(t, name)
		}
		seen := checkStackHardened(t, s.name, false)
		for _, role := range []string{"app", "nginx", "db", "backup"} {
			if !seen[role] {
				t.Errorf("no running %s container", role)
			}
		}
	})

	t.Run("second up changes nothing", func(t *testing.T) {
		s.up("--expect-no-changes")
	})

	t.Run("files outside the build context change nothing", func(t *testing.T) {
		// Untracked files under nginx/ and next to go.mod (a stand-in for .env): outside the
		// image's allow-list, so the image, the revision and the replicas stay as they are.
		for _, p := range []string{
			filepath.Join(s.root, "nginx", "e2e-untracked-"+s.name+".txt"),
			filepath.Join(s.root, ".env."+s.name),
		} {
			if err := os.WriteFile(p, []byte("NOT_IN_THE_IMAGE=1\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if err := os.Remove(p); err != nil {
					t.Error(err)
				}
			})
		}
		s.run(15*time.Minute, "preview", "--expect-no-changes", "--suppress-progress")
	})

	t.Run("state holds no secret in clear", func(t *testing.T) {
		if state := s.run(time.Minute, "stack", "export"); containsAny(state, secrets) {
			t.Errorf("exported state contains a password in clear")
		}
		checkNoSecretInFiles(t, filepath.Dir(s.configFile), secrets)
	})

	t.Run("zero-downtime redeploy under load", func(t *testing.T) {
		before := s.stringsOutput("replicaNames")
		s.set("notes:appVersion", "e2e-2")
		l := newLoad(api, 16)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { l.run(ctx, 16); close(done) }()
		loadStart := time.Now()
		time.Sleep(5 * time.Second)
		start := time.Now()
		s.up()
		deploy := time.Since(start)
		// At least 60 s of load in all, and 5 s of it after the deploy.
		time.Sleep(max(5*time.Second, time.Minute-time.Since(loadStart)))
		cancel()
		<-done
		l.report(t, fmt.Sprintf("redeploy (pulumi up %v)", deploy.Round(time.Second)))
		l.checkFailures(t)
		l.verifyAcked(t)
		// Retried POSTs must not have stored a note twice.
		dups := docker(t, "exec", s.output("databaseContainer"), "psql", "-X", "-U", "notes", "-d", "notes", "-At", "-c",
			"SELECT title, count(*) FROM notes WHERE title LIKE 'load %' GROUP BY title HAVING count(*) > 1")
		if dups != "" {
			t.Errorf("notes stored more than once:\n%s", tail(dups, 20))
		}
		after := s.stringsOutput("replicaNames")
		running := strings.Fields(docker(t, "ps", "-a", "--format", "{{.Names}}"))
		for _, old := range before {
			if slices.Contains(after, old) {
				t.Errorf("replica %s was not replaced by the image change", old)
			}
			if slices.Contains(running, old) {
				t.Errorf("old replica %s still exists after the deploy", old)
			}
		}
	})

	t.Run("backup and restore", func(t *testing.T) {
		backupAndRestore(t, s, client, api)
	})

	t.Run("rotate the database password", func(t *testing.T) {
		db := s.output("databaseContainer")
		id := docker(t, "inspect", "-f", "{{.Id}}", db)
		s.setSecret("notes:dbPassword", randomSecret(t))
		s.up()
		if now := docker(t, "inspect", "-f", "{{.Id}}", db); now != id {
			t.Error("a password change recreated the database container")
		}
		expectStatus(t, client, s.output("healthUrl"), http.StatusOK)
		// The migration job and the backups connect with the new password.
		docker(t, "exec", s.output("backupContainer"), "notes-backup", "now")
	})

	// Last: its database outage and its PATCHes and DELETEs must not disturb the others.
	t.Run("fuzz through the front door", func(t *testing.T) {
		frontDoorFuzz(t, s, secrets[2])
	})

	s.destroy()
}

// TestDeploySSH deploys over ssh:// with the bootstrap step, and with TLS from certificates given
// as Pulumi secrets (tls: provided), the mode for users who bring their own certificates.
func TestDeploySSH(t *testing.T) {
	t.Parallel()
	h := startSSHD(t)
	s, secrets := devStack(t, "s")
	s.set("notes:dockerHost", h.dockerHost())
	s.setList("notes:sshOpts", h.SSHOpts)
	s.set("notes:bootstrap", "true")
	s.set("notes:backups", "false")
	const domain = "notes.test"
	cert := newTestCert(t, domain)
	httpsPort := freePort(t)
	s.set("notes:tls", "provided")
	s.set("notes:domain", domain)
	s.set("notes:httpsPort", strconv.Itoa(httpsPort))
	s.setSecret("notes:tlsCert", cert.CertPEM)
	s.setSecret("notes:tlsKey", cert.KeyPEM)
	secrets = append(secrets, strings.Split(strings.TrimSpace(cert.KeyPEM), "\n")[1])
	s.up()

	base := s.output("url")
	if want := fmt.Sprintf("https://%s:%d", domain, httpsPort); base != want {
		t.Fatalf("url = %q, want %q", base, want)
	}
	resp := expectStatus(t, cert.Client, s.output("healthUrl"), http.StatusOK)
	if resp.Header.Get("Strict-Transport-Security") == "" {
		t.Error("HTTPS response without Strict-Transport-Security")
	}
	httpURL := fmt.Sprintf("http://%s:%s/api/notes", domain, s.get("notes:httpPort"))
	redirect := expectStatus(t, cert.Client, httpURL, http.StatusPermanentRedirect)
	if loc := redirect.Header.Get("Location"); !strings.HasPrefix(loc, base+"/api/notes") {
		t.Errorf("port 80 redirects %s to %q, want %s/api/notes", httpURL, loc, base)
	}

	l := newLoad(s.output("apiUrl"), 1)
	l.client = cert.Client
	l.post(context.Background(), "over ssh and tls")
	if len(l.failures) > 0 || len(l.acked) != 1 {
		t.Fatalf("creating a note over the SSH-deployed stack: %v", l.failures)
	}
	l.verifyAcked(t)
	for _, name := range s.stringsOutput("replicaNames") {
		checkHardened(t, name)
	}
	if state := s.run(time.Minute, "stack", "export"); containsAny(state, secrets) {
		t.Error("exported state contains a password or the TLS key in clear")
	}
	// The operations reach the containers over ssh with the stack's sshOpts.
	status := opsOn(t, s, "", "status")
	for _, want := range append(s.stringsOutput("replicaNames"), s.output("databaseContainer"), "healthy", "backups: off") {
		if !strings.Contains(status, want) {
			t.Errorf("status over ssh lacks %q:\n%s", want, status)
		}
	}
	if out := opsOn(t, s, "SELECT 'count=' || count(*) FROM notes;", "psql"); !strings.Contains(out, "count=1") {
		t.Errorf("psql over ssh printed %q, want count=1", out)
	}
	opsOn(t, s, "", "exec", "/notes", "healthcheck", "--url", "http://127.0.0.1:8080/readyz")
	// The bootstrap must find Docker installed and leave it alone: a second up is a no-op.
	s.up("--expect-no-changes")
	s.destroy()
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

func expectStatus(t *testing.T, c *http.Client, url string, want int) *http.Response {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != want {
		t.Fatalf("GET %s: status %d, want %d: %s", url, resp.StatusCode, want, body)
	}
	return resp
}

// checkHardened inspects a replica: non-root, no capabilities,
// no-new-privileges and no published port.
func checkHardened(t *testing.T, name string) {
	t.Helper()
	var info []struct {
		Config     struct{ User string }
		HostConfig struct {
			CapDrop      []string
			SecurityOpt  []string
			PortBindings map[string]any
		}
		State struct{ Health *struct{ Status string } }
	}
	if err := json.Unmarshal([]byte(docker(t, "inspect", name)), &info); err != nil || len(info) != 1 {
		t.Fatalf("docker inspect %s: %v", name, err)
	}
	c := info[0]
	if u := c.Config.User; u == "" || u == "root" || u == "0" || strings.HasPrefix(u, "0:") {
		t.Errorf("%s runs as user %q", name, u)
	}
	if !strings.EqualFold(strings.Join(c.HostConfig.CapDrop, ","), "ALL") {
		t.Errorf("%s: CapDrop = %v, want ALL", name, c.HostConfig.CapDrop)
	}
	if !strings.Contains(strings.Join(c.HostConfig.SecurityOpt, ","), "no-new-privileges") {
		t.Errorf("%s: SecurityOpt = %v, want no-new-privileges", name, c.HostConfig.SecurityOpt)
	}
	if len(c.HostConfig.PortBindings) > 0 {
		t.Errorf("%s publishes ports %v", name, c.HostConfig.PortBindings)
	}
	if c.State.Health == nil || c.State.Health.Status != "healthy" {
		t.Errorf("%s health = %+v, want healthy", name, c.State.Health)
	}
}

func checkNoSecretInFiles(t *testing.T, dir string, secrets []string) {
	t.Helper()
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, s := range secrets {
			if strings.Contains(string(b), s) {
				t.Errorf("%s holds a password in clear", path)
			}
		}
		return nil
	})
}
