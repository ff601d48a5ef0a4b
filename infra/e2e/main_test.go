//go:build e2e

package e2e

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// swarmTests are the tests that deploy engine swarm to the local daemon. TestCluster is not one:
// its swarm runs on daemons of its own.
var swarmTests = []string{"TestSwarm", "TestACMESwarm", "TestFaults"}

// TestMain makes the local daemon a single-node swarm manager before any test starts, when the
// selected tests include one of swarmTests, and leaves that swarm again at the end. The tests run
// in parallel (make e2e: -parallel), and a swarm init or leave breaks Docker's DNS on bridge
// networks that exist at that moment (moby#51491), so it must not happen while another test's
// containers-engine stack runs; a stack created on a manager works.
func TestMain(m *testing.M) {
	flag.Parse()
	if err := warmBuildCaches(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	leave, err := ensureLocalSwarm()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	code := m.Run()
	if leave != nil {
		if err := leave(); err != nil {
			fmt.Fprintln(os.Stderr, "e2e:", err)
		}
	}
	os.Exit(code)
}

// warmBuildCaches builds, once and before the tests start in parallel, what every stack's first
// `pulumi up` builds: the Pulumi program (Go's build cache) and the image's module and dependency
// layers (the Dockerfile's deps stage, with the legacy builder and the go image the program
// uses). Neither cache shares work in progress, so stacks starting together on a cold machine
// each compiled the standard library and the dependencies, for minutes each on two cores; warm,
// this takes seconds.
func warmBuildCaches() error {
	root, err := filepath.Abs("../..")
	if err != nil {
		return err
	}
	start := time.Now()
	// The flags of Pulumi's Go language host: the compiled packages are the ones it reuses.
	build := exec.Command("go", "build", "-buildvcs=false", "-trimpath", "-ldflags", "-w -s", "-o", os.DevNull, "./infra")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("warming the Pulumi program's build: %v\n%s", err, out)
	}
	image := exec.Command("docker", "build", "-q", "--target", "deps", "--build-arg", "GO_IMAGE=golang:1.26", "-t", "notes-e2e-deps", root)
	image.Env = append(os.Environ(), "DOCKER_BUILDKIT=0") // as infra/scripts/build-image.sh
	if out, err := image.CombinedOutput(); err != nil {
		return fmt.Errorf("warming the image's dependency layers: %v\n%s", err, out)
	}
	fmt.Printf("e2e: build caches warm (the Pulumi program, the image's dependency layers) in %v\n", time.Since(start).Round(100*time.Millisecond))
	return nil
}

// ensureLocalSwarm inits the swarm if a selected test needs one and the daemon is no manager yet;
// it returns how to undo that, or nil when there is nothing to undo.
func ensureLocalSwarm() (leave func() error, err error) {
	if !selectsAny(flagValue("test.run"), flagValue("test.skip"), swarmTests) {
		return nil, nil
	}
	state, err := dockerCLI("info", "--format", "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}")
	if err != nil {
		return nil, err
	}
	switch state {
	case "active true":
		return nil, nil
	case "inactive false":
	default:
		return nil, fmt.Errorf("the local daemon's swarm state is %q: not a manager, and not free to become one", state)
	}
	if _, err := dockerCLI("swarm", "init", "--advertise-addr", "127.0.0.1"); err != nil {
		return nil, err
	}
	fmt.Println("e2e: ran docker swarm init --advertise-addr 127.0.0.1 on the local daemon; it leaves at the end")
	return func() error {
		left, err := dockerCLI("service", "ls", "--format", "{{.Name}}")
		if err != nil {
			return err
		}
		if left != "" {
			return fmt.Errorf("not leaving the swarm: services remain: %s", strings.Fields(left))
		}
		_, err = dockerCLI("swarm", "leave", "--force")
		return err
	}, nil
}

// selectsAny reports whether a test run with -run and -skip patterns includes any of the named
// top-level tests (only the pattern's first, top-level element matters here).
func selectsAny(run, skip string, names []string) bool {
	top := func(pattern string) *regexp.Regexp {
		if pattern == "" {
			return nil
		}
		first, _, _ := strings.Cut(pattern, "/")
		re, err := regexp.Compile(first)
		if err != nil {
			return nil // go test reports the bad pattern itself
		}
		return re
	}
	runRE, skipRE := top(run), top(skip)
	for _, n := range names {
		if (runRE == nil || runRE.MatchString(n)) && (skipRE == nil || !skipRE.MatchString(n)) {
			return true
		}
	}
	return false
}

func flagValue(name string) string {
	if f := flag.Lookup(name); f != nil {
		return f.Value.String()
	}
	return ""
}

func dockerCLI(args ...string) (string, error) {
	out, err := exec.Command("docker", args...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("docker %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

func TestSelectsAny(t *testing.T) {
	for _, c := range []struct {
		run, skip string
		want      bool
	}{
		{"", "", true},
		{"^TestSwarm$", "", true},
		{"^TestDeployLocal$", "", false},
		{"TestDeploy", "", false},
		{"Swarm/redeploy", "", true},
		{"", "^(TestFaults|TestSwarm|TestACMESwarm)$", false},
		{"", "^(TestFaults|TestCluster)$", true},
		{"^TestCluster$", "", false},
	} {
		if got := selectsAny(c.run, c.skip, swarmTests); got != c.want {
			t.Errorf("selectsAny(run %q, skip %q) = %v, want %v", c.run, c.skip, got, c.want)
		}
	}
}
