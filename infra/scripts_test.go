package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
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
