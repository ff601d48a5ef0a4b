package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Every shell script the program runs or uploads is a file here with a POSIX sh shebang, and
// shellcheck-clean when shellcheck is installed (`apt-get install shellcheck`; CI has it).
func TestScriptsHaveShebangAndPassShellcheck(t *testing.T) {
	scripts, err := filepath.Glob(filepath.Join("scripts", "*.sh"))
	if err != nil {
		t.Fatal(err)
	}
	if len(scripts) < 9 {
		t.Fatalf("found %d scripts in infra/scripts, want every script the program uses: %v", len(scripts), scripts)
	}
	for _, s := range scripts {
		b, err := os.ReadFile(s)
		if err != nil {
			t.Fatal(err)
		}
		if first, _, _ := strings.Cut(string(b), "\n"); first != "#!/bin/sh" {
			t.Errorf("%s starts with %q, want #!/bin/sh", s, first)
		}
		// Parameters are arguments or environment, never text substitution.
		if m := placeholderRE.FindString(string(b)); m != "" {
			t.Errorf("%s has a text-substitution placeholder %s", s, m)
		}
	}
	sc, err := exec.LookPath("shellcheck")
	if err != nil {
		t.Skip("shellcheck is not installed")
	}
	out, err := exec.Command(sc, append([]string{"--shell=sh", "--severity=style"}, scripts...)...).CombinedOutput()
	if err != nil {
		t.Errorf("shellcheck: %v\n%s", err, out)
	}
}

var placeholderRE = regexp.MustCompile(`@[A-Z_]+@`)

// nginx-install.sh installs the "server ... resolve" form of the site only on an nginx that has
// it (1.27.3 and later); the function is run from the script's own text.
func TestNginxInstallSupportsResolve(t *testing.T) {
	start := strings.Index(nginxInstallScript, "supports_resolve() {")
	end := strings.Index(nginxInstallScript, "# END supports_resolve")
	if start < 0 || end < start {
		t.Fatal("supports_resolve not found in scripts/nginx-install.sh")
	}
	fn := nginxInstallScript[start:end]
	for _, tt := range []struct {
		version string
		want    bool
	}{
		{"1.22.1", false}, {"1.26.3", false}, {"1.27.2", false}, {"1.27.3", true}, {"1.27.5", true},
		{"1.28.0", true}, {"1.29.10", true}, {"2.0.0", true}, {"0.9.9", false},
		{"", false}, {"1.27", false}, {"garbage", false}, {"1.27.3-dev", true},
	} {
		err := exec.Command("sh", "-c", fn+`supports_resolve "$1"`, "sh", tt.version).Run()
		if got := err == nil; got != tt.want {
			t.Errorf("supports_resolve %q = %v, want %v (%v)", tt.version, got, tt.want, err)
		}
	}
}

// certbot-loop.sh with a certbot that succeeds or fails on demand: the status file follows the
// last run, HUP runs certbot at once, USR1 with --force-renewal, TERM ends the loop.
func TestCertbotLoop(t *testing.T) {
	dir := t.TempDir()
	rc, calls, status := filepath.Join(dir, "rc"), filepath.Join(dir, "calls"), filepath.Join(dir, "status")
	fake := "#!/bin/sh\necho \"$*\" >>" + calls + "\nexit \"$(cat " + rc + ")\"\n"
	if err := os.WriteFile(filepath.Join(dir, "certbot"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	setRC := func(code string) {
		if err := os.WriteFile(rc, []byte(code), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	setRC("0")
	stderrFile := filepath.Join(dir, "stderr")
	errOut, err := os.Create(stderrFile)
	if err != nil {
		t.Fatal(err)
	}
	defer errOut.Close()
	stderr := func() string { b, _ := os.ReadFile(stderrFile); return string(b) }
	cmd := exec.Command("sh", "-c", certbotLoopScript, "sh", "certonly", "--webroot")
	cmd.Env = append(os.Environ(), "PATH="+dir+":"+os.Getenv("PATH"), "NOTES_CERTBOT_STATUS="+status)
	cmd.Stderr = errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
	})
	wait := func(what string, ok func(status, calls string) bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			s, _ := os.ReadFile(status)
			c, _ := os.ReadFile(calls)
			if ok(string(s), string(c)) {
				return
			}
		}
		s, _ := os.ReadFile(status)
		c, _ := os.ReadFile(calls)
		t.Fatalf("%s: status %q, calls %q, stderr %q", what, s, c, stderr())
	}
	runs := func(c string) int { return strings.Count(c, "\n") }
	wait("first run", func(s, c string) bool { return strings.HasPrefix(s, "ok ") && c == "certonly --webroot\n" })

	setRC("1")
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	wait("HUP, failing certbot", func(s, c string) bool { return strings.HasPrefix(s, "failed ") && runs(c) == 2 })
	if !strings.Contains(stderr(), "certbot failed (exit 1)") {
		t.Errorf("a failed run is not logged: %q", stderr())
	}

	setRC("0")
	if err := cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	wait("USR1", func(s, c string) bool {
		return strings.HasPrefix(s, "ok ") && strings.HasSuffix(c, "certonly --webroot --force-renewal\n")
	})

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		done <- err // for the cleanup
		if err != nil {
			t.Errorf("loop exited with %v on TERM, want 0", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("loop did not end on TERM")
	}
}
