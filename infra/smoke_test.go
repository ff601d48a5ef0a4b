package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The in-container smoke check gets the host name as an argument, never in its script text.
func TestSmokeCommandInNginxPassesHostAsArgument(t *testing.T) {
	on := NewOnHost(mustDockerHost(t, "ssh://deploy@h.example.com"), nil)
	args := &SmokeArgs{Stack: "s", OnHost: on, URL: "http://h.example.com/readyz",
		Probe: SmokeProbe{InNginx: true, NginxContainer: "notes-s-nginx", PublicHost: "h.example.com"}}
	cmd, _ := smokeCommand(args)
	if !strings.Contains(cmd, "docker exec notes-s-nginx sh -c") {
		t.Fatalf("expected the in-container check, got %s", cmd)
	}
	if strings.Contains(smokeScript, "h.example.com") {
		t.Error("the host is part of the script text")
	}
	if !strings.Contains(cmd, " sh nginx h.example.com 30") {
		t.Errorf("host and attempts are not the script's arguments: %s", cmd)
	}
	// On failure: the replicas' logs of this stack, over the same ssh path.
	if !strings.Contains(cmd, "|| { ssh ") || !strings.Contains(cmd, "docker logs --tail 20") || !strings.Contains(cmd, " sh s") {
		t.Errorf("a failed check does not print the replicas' logs over ssh: %s", cmd)
	}
}

func TestSmokeCommandCurl(t *testing.T) {
	on := NewOnHost(mustDockerHost(t, "unix:///var/run/docker.sock"), nil)
	args := &SmokeArgs{Stack: "s", OnHost: on, URL: "https://notes.example.com/readyz",
		Probe: SmokeProbe{PublicHost: "notes.example.com", Address: "::1", Insecure: true}}
	cmd, env := smokeCommand(args)
	for _, want := range []string{" sh curl https://notes.example.com/readyz 30 --insecure --connect-to 'notes.example.com::[::1]:'", "|| { sh -c "} {
		if !strings.Contains(cmd, want) {
			t.Errorf("smoke command lacks %q: %s", want, cmd)
		}
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
	out, err := exec.Command("sh", "-c", smokeScript, "sh", "curl", url, "1").CombinedOutput()
	if err == nil {
		t.Fatalf("smoke script succeeded against a closed port:\n%s", out)
	}
	for _, want := range []string{"phase smoke: FAILED", url, "last HTTP status: 000"} {
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
