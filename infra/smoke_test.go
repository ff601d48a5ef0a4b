package main

import (
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/notes-stack/notes/nginx"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// The in-container smoke check gets the host name as an argument, never in its script text.
func TestSmokeCommandInNginxPassesHostAsArgument(t *testing.T) {
	on := NewOnHost(mustDockerHost(t, "ssh://deploy@h.example.com"), nil)
	args := &SmokeArgs{Stack: "s", OnHost: on, URL: "http://h.example.com/readyz",
		Probe: SmokeProbe{InNginx: true, NginxContainer: "notes-s-nginx", PublicHost: "h.example.com"}, ThroughNginx: true}
	cmd, _ := smokeCommand(args, "0a1b2c3d", "0", []string{"notes-s-app-1-0a1b2c3d"})
	if !strings.Contains(cmd, "docker exec notes-s-nginx sh -c") {
		t.Fatalf("expected the in-container check, got %s", cmd)
	}
	if strings.Contains(smokeScript, "h.example.com") {
		t.Error("the host is part of the script text")
	}
	if !strings.Contains(cmd, " sh nginx h.example.com 30 0a1b2c3d") {
		t.Errorf("host, attempts and revision are not the script's arguments: %s", cmd)
	}
	// First the host-side half (health, migration, revision of the replicas), over ssh.
	if !strings.HasPrefix(cmd, "{ ssh ") || !strings.Contains(cmd, " sh 0a1b2c3d 0 30 notes-s-app-1-0a1b2c3d") {
		t.Errorf("the proof does not check the replicas on the host first: %s", cmd)
	}
	// On failure: the replicas' logs of this stack, over the same ssh path.
	if !strings.Contains(cmd, "|| { ssh ") || !strings.Contains(cmd, "docker logs --tail 20") || !strings.Contains(cmd, " sh s") {
		t.Errorf("a failed check does not print the replicas' logs over ssh: %s", cmd)
	}
}

func TestSmokeCommandCurl(t *testing.T) {
	on := NewOnHost(mustDockerHost(t, "unix:///var/run/docker.sock"), nil)
	args := &SmokeArgs{Stack: "s", OnHost: on, URL: "https://notes.example.com/readyz",
		Probe: SmokeProbe{PublicHost: "notes.example.com", Address: "::1", Trust: pulumi.String("PEM")}, ThroughNginx: true}
	cmd, env := smokeCommand(args, "0a1b2c3d", "0", []string{"r1", "r2"})
	for _, want := range []string{" sh curl https://notes.example.com/readyz 30 0a1b2c3d --connect-to 'notes.example.com::[::1]:'", "|| { sh -c ", " sh 0a1b2c3d 0 30 r1 r2 && "} {
		if !strings.Contains(cmd, want) {
			t.Errorf("smoke command lacks %q: %s", want, cmd)
		}
	}
	if strings.Contains(cmd, "--insecure") {
		t.Errorf("smoke command skips certificate verification: %s", cmd)
	}
	if _, ok := env[smokeTrustEnv]; !ok {
		t.Errorf("smoke command environment lacks %s (the certificates it trusts)", smokeTrustEnv)
	}
	if _, ok := env["DOCKER_HOST"]; !ok {
		t.Error("the replicas' logs would not reach the stack's daemon: no DOCKER_HOST")
	}
}

// The curl script, run for real against a URL that cannot answer, names the URL and the last
// status and fails; a hostile URL stays one argument.
func TestSmokeScriptReportsFailure(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("no curl")
	}
	dir := t.TempDir()
	marker := filepath.Join(dir, "pwned")
	url := "http://127.0.0.1:1/readyz?$(touch " + marker + ")"
	out, err := exec.Command("sh", "-c", smokeScript, "sh", "curl", url, "1", "0a1b2c3d").CombinedOutput()
	if err == nil {
		t.Fatalf("smoke script succeeded against a closed port:\n%s", out)
	}
	for _, want := range []string{"phase smoke: FAILED", url, "last HTTP status: none", "revision: none"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("smoke output lacks %q:\n%s", want, out)
		}
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("the URL was run as shell code")
	}
}

func TestProbeFrom(t *testing.T) {
	for _, tc := range []struct {
		host, bind string
		addr       string
		ok         bool
	}{
		{"unix:///var/run/docker.sock", "0.0.0.0", "127.0.0.1", true},
		{"unix:///var/run/docker.sock", "127.0.0.1", "127.0.0.1", true},
		{"ssh://deploy@h.example.com", "0.0.0.0", "h.example.com", true},
		{"ssh://deploy@h.example.com", "127.0.0.1", "", false},
		{"ssh://deploy@127.0.0.1:2222", "127.0.0.1", "127.0.0.1", true},
		{"ssh://deploy@h.example.com", "10.0.0.7", "10.0.0.7", true},
		{"tcp://10.0.0.5:2376", "0.0.0.0", "10.0.0.5", true},
		{"tcp://10.0.0.5:2376", "127.0.0.1", "", false},
	} {
		addr, ok := probeFrom(mustDockerHost(t, tc.host), tc.bind)
		if addr != tc.addr || ok != tc.ok {
			t.Errorf("probeFrom(%s, %s) = %q, %v; want %q, %v", tc.host, tc.bind, addr, ok, tc.addr, tc.ok)
		}
	}
}

// The curl script, run for real against a server: it passes only on a 200 that carries the
// wanted revision.
func TestSmokeScriptWantsTheRevision(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("no curl")
	}
	for _, tc := range []struct {
		name   string
		status int
		rev    string
		ok     bool
	}{
		{"new revision", http.StatusOK, "0a1b2c3d", true},
		{"old revision", http.StatusOK, "ffff0000", false},
		{"no revision", http.StatusOK, "", false},
		{"new revision, not ready", http.StatusServiceUnavailable, "0a1b2c3d", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tc.rev != "" {
					w.Header().Set("X-Notes-Revision", tc.rev)
				}
				w.WriteHeader(tc.status)
			}))
			t.Cleanup(srv.Close)
			out, err := exec.Command("sh", "-c", smokeScript, "sh", "curl", srv.URL+"/readyz", "1", "0a1b2c3d").CombinedOutput()
			if (err == nil) != tc.ok {
				t.Fatalf("smoke script ok = %v, want %v:\n%s", err == nil, tc.ok, out)
			}
			if !tc.ok && !strings.Contains(string(out), fmt.Sprintf("last HTTP status: %d", tc.status)) {
				t.Errorf("failure does not name the last status:\n%s", out)
			}
		})
	}
}

func TestMigrationStatus(t *testing.T) {
	for _, tc := range []struct {
		out string
		ok  bool
	}{
		{"goose: ok\nphase migrate: notes-s-migrate-0a1b2c3d exited 0\n", true},
		{"phase migrate: notes-s-migrate-0a1b2c3d exited 0\ntrailing noise", false},
		{"", false},
	} {
		got, err := migrationStatus(tc.out)
		if (err == nil) != tc.ok || (tc.ok && got != "0") {
			t.Errorf("migrationStatus(%q) = %q, %v; want ok=%v", tc.out, got, err, tc.ok)
		}
	}
}

// The curl script against a TLS server whose certificate no public CA signed: it verifies the
// certificate against NOTES_SMOKE_CA and refuses without it or with another certificate.
func TestSmokeScriptVerifiesTLS(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("no curl")
	}
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Notes-Revision", "0a1b2c3d")
	}))
	t.Cleanup(srv.Close)
	served := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}))
	other, _, err := nginx.SelfSignedCertificate([]string{"example.com"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		trust string
		ok    bool
	}{
		{"served certificate trusted", served, true},
		{"another certificate first, then the served one", string(other) + served, true},
		{"nothing trusted", "", false},
		{"another certificate", string(other), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command("sh", "-c", smokeScript, "sh", "curl", srv.URL+"/readyz", "1", "0a1b2c3d")
			cmd.Env = append(os.Environ(), smokeTrustEnv+"="+tc.trust)
			out, err := cmd.CombinedOutput()
			if (err == nil) != tc.ok {
				t.Fatalf("smoke script ok = %v, want %v:\n%s", err == nil, tc.ok, out)
			}
			if !tc.ok && !strings.Contains(string(out), "phase smoke: curl:") {
				t.Errorf("a certificate that does not verify is not named:\n%s", out)
			}
		})
	}
}
