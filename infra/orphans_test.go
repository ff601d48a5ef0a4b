package main

import (
	"crypto/rand"
	"encoding/hex"
	"os/exec"
	"strings"
	"testing"
)

// removeOrphan against the local dockerd: a container left created, or running, under the name
// is stopped and removed with a line saying so; a free name is left alone, silently; a volume of
// that name is not a container and survives.
func TestRemoveOrphan(t *testing.T) {
	if exec.Command("docker", "info").Run() != nil {
		t.Skip("no Docker daemon answers (make setup starts one)")
	}
	b := make([]byte, 4)
	rand.Read(b)
	name := "notes-orphan-test-" + hex.EncodeToString(b)
	host, err := ParseDockerHost("unix:///var/run/docker.sock")
	if err != nil {
		t.Fatal(err)
	}
	on := NewOnHost(host, nil)
	image := strings.TrimSpace(runCmd(t, "docker", "images", "-q", "--filter", "reference=postgres:17"))
	if image == "" {
		t.Skip("no postgres:17 image (make setup builds the stand-ins)")
	}
	t.Cleanup(func() {
		exec.Command("docker", "rm", "-f", name).Run()
		exec.Command("docker", "volume", "rm", name).Run()
	})

	for _, start := range []bool{false, true} {
		args := []string{"create", "--name", name, "--stop-timeout", "1", "postgres:17", "sleep", "600"}
		runCmd(t, "docker", args...)
		if start {
			runCmd(t, "docker", "start", name)
		}
		out, err := removeOrphan(on, name)
		if err != nil {
			t.Fatalf("started=%v: %v", start, err)
		}
		if !strings.Contains(out, "removing container "+name) {
			t.Errorf("started=%v: output %q does not say what it removed", start, out)
		}
		if exec.Command("docker", "container", "inspect", name).Run() == nil {
			t.Fatalf("started=%v: container %s still exists", start, name)
		}
	}

	runCmd(t, "docker", "volume", "create", name)
	out, err := removeOrphan(on, name)
	if err != nil || out != "" {
		t.Errorf("with no container of that name: output %q, error %v; want neither", out, err)
	}
	if exec.Command("docker", "volume", "inspect", name).Run() != nil {
		t.Error("the volume of the same name was removed")
	}
}

func runCmd(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}
