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
