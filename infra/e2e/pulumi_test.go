//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	mathrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// projectRoot is the repository root, where Pulumi.yaml lives.
func projectRoot(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "Pulumi.yaml")); err != nil {
		t.Fatalf("no Pulumi.yaml at the project root %s: %v", dir, err)
	}
	return dir
}

// stack is one Pulumi stack with its own file backend, passphrase and config file in a temp dir,
// so a test never touches the repository's Pulumi.<stack>.yaml files or a developer's state.
type stack struct {
	t          *testing.T
	name       string
	root       string
	configFile string
	env        []string
	destroyed  bool
}

func randomSuffix(t *testing.T) string {
	t.Helper()
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func randomSecret(t *testing.T) string {
	t.Helper()
	b := make([]byte, 18)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "pw" + hex.EncodeToString(b)
}

// newStack creates stack e2e<prefix><random> from the config of the committed stack file base
// (for example Pulumi.dev.yaml). Its Cleanup destroys whatever is left and checks that no
// container, network or volume of the stack remains.
func newStack(t *testing.T, prefix, base string) *stack {
	t.Helper()
	if _, err := exec.LookPath("pulumi"); err != nil {
		t.Fatal("pulumi is not on PATH: run the suite with `make e2e` (it sources scripts/pulumi-env.sh)")
	}
	root := projectRoot(t)
	dir := t.TempDir()
	s := &stack{
		t:          t,
		name:       "e2e" + prefix + randomSuffix(t),
		root:       root,
		configFile: filepath.Join(dir, "Pulumi.stack.yaml"),
	}
	if err := os.MkdirAll(filepath.Join(dir, "state"), 0o700); err != nil {
		t.Fatal(err)
	}
	s.env = append(os.Environ(),
		"PULUMI_BACKEND_URL=file://"+filepath.Join(dir, "state"),
		"PULUMI_CONFIG_PASSPHRASE="+randomSecret(t),
		"PULUMI_SKIP_UPDATE_CHECK=true",
		"PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true",
		"NO_COLOR=1",
	)
	cfg, err := os.ReadFile(filepath.Join(root, base))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err = plainConfig(cfg)
	if err != nil {
		t.Fatalf("%s: %v", base, err)
	}
	if err := os.WriteFile(s.configFile, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	// stack init writes the new stack's encryption salt into Pulumi.<stack>.yaml of its working
	// directory: a scratch project folder, not the checkout.
	initDir := filepath.Join(dir, "init")
	if err := os.MkdirAll(initDir, 0o700); err != nil {
		t.Fatal(err)
	}
	project, err := os.ReadFile(filepath.Join(root, "Pulumi.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(initDir, "Pulumi.yaml"), project, 0o600); err != nil {
		t.Fatal(err)
	}
	s.runIn(initDir, 2*time.Minute, "stack", "init", s.name)
	t.Cleanup(s.cleanup)
	return s
}

// plainConfig returns a stack file's settings without what belongs to the stack it came from: its
// encryption salt or key and its encrypted values, which this stack's passphrase cannot decrypt
// (a developer's checkout may hold them; scripts/stack.sh keeps them out of the committed files).
func plainConfig(file []byte) ([]byte, error) {
	var doc struct {
		Config map[string]any `yaml:"config"`
	}
	if err := yaml.Unmarshal(file, &doc); err != nil {
		return nil, fmt.Errorf("not a stack file: %w", err)
	}
	for k, v := range doc.Config {
		if m, ok := v.(map[string]any); ok {
			if _, secure := m["secure"]; secure {
				delete(doc.Config, k)
			}
		}
	}
	return yaml.Marshal(map[string]any{"config": doc.Config})
}

// run runs pulumi with the stack's environment and fails the test on error.
func (s *stack) run(timeout time.Duration, args ...string) string {
	s.t.Helper()
	return s.runIn(s.root, timeout, args...)
}

// runIn is run in another project folder.
func (s *stack) runIn(dir string, timeout time.Duration, args ...string) string {
	s.t.Helper()
	out, err := s.tryIn(dir, timeout, "", args...)
	if err != nil {
		s.t.Fatalf("pulumi %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// try runs pulumi and returns its combined output and error.
func (s *stack) try(timeout time.Duration, stdin string, args ...string) (string, error) {
	return s.tryIn(s.root, timeout, stdin, args...)
}

func (s *stack) tryIn(dir string, timeout time.Duration, stdin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	// The stack flags go before a "--", after which everything is a value.
	words, values := args, []string(nil)
	if i := slices.Index(args, "--"); i >= 0 {
		words, values = args[:i], args[i:]
	}
	full := append([]string{"--non-interactive", "--cwd", dir}, words...)
	if !(args[0] == "stack" && len(args) > 1 && args[1] == "init") {
		full = append(full, "--stack", s.name)
	}
	switch args[0] {
	case "config", "preview", "up", "destroy", "refresh":
		full = append(full, "--config-file", s.configFile)
	}
	full = append(full, values...)
	cmd := exec.CommandContext(ctx, "pulumi", full...)
	cmd.Env = s.env
	return runLogged(s.t, cmd, stdin, "pulumi "+strings.Join(args, " "))
}

// runLogged runs cmd with stdin and returns its combined output; the test log gets the command's
// label, duration and result.
func runLogged(t *testing.T, cmd *exec.Cmd, stdin, label string) (string, error) {
	cmd.Stdin = strings.NewReader(stdin)
	cmd.WaitDelay = 10 * time.Second
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	start := time.Now()
	err := cmd.Run()
	t.Logf("%s: %s (%v)", label, time.Since(start).Round(100*time.Millisecond), errString(err))
	return buf.String(), err
}

func errString(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}

func (s *stack) set(key, value string) {
	s.t.Helper()
	s.run(time.Minute, "config", "set", key, "--", value)
}

// setPath sets a value inside a structured key (notes:workers[0].host).
func (s *stack) setPath(key, value string) {
	s.t.Helper()
	s.run(time.Minute, "config", "set", "--path", key, "--", value)
}

func (s *stack) get(key string) string {
	s.t.Helper()
	return strings.TrimSpace(s.run(time.Minute, "config", "get", key))
}

func (s *stack) setSecret(key, value string) {
	s.t.Helper()
	if out, err := s.try(time.Minute, value, "config", "set", "--secret", key); err != nil {
		s.t.Fatalf("pulumi config set --secret %s: %v\n%s", key, err, out)
	}
}

func (s *stack) setList(key string, values []string) {
	s.t.Helper()
	for i, v := range values {
		s.run(time.Minute, "config", "set", "--path", fmt.Sprintf("%s[%d]", key, i), "--", v)
	}
}

func (s *stack) up(extra ...string) string {
	s.t.Helper()
	return s.run(20*time.Minute, append([]string{"up", "--yes", "--skip-preview", "--suppress-progress"}, extra...)...)
}

// outputs returns the stack outputs; secrets stay masked.
func (s *stack) outputs() map[string]any {
	s.t.Helper()
	out := s.run(time.Minute, "stack", "output", "--json")
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		s.t.Fatalf("stack outputs are not JSON: %v\n%s", err, out)
	}
	return m
}

func (s *stack) output(key string) string {
	s.t.Helper()
	v, ok := s.outputs()[key]
	if !ok {
		s.t.Fatalf("stack output %q missing", key)
	}
	str, ok := v.(string)
	if !ok {
		s.t.Fatalf("stack output %q is %T, want string", key, v)
	}
	return str
}

func (s *stack) stringsOutput(key string) []string {
	s.t.Helper()
	v, ok := s.outputs()[key].([]any)
	if !ok {
		s.t.Fatalf("stack output %q missing or not a list", key)
	}
	var out []string
	for _, x := range v {
		out = append(out, fmt.Sprint(x))
	}
	return out
}

func (s *stack) destroy() {
	s.t.Helper()
	s.run(15*time.Minute, "destroy", "--yes", "--skip-preview", "--suppress-progress")
	s.destroyed = true
}

// cleanup destroys the stack if the test did not, removes the stack, and fails the test when any
// Docker object named after the stack is left behind (it removes those too, so a failed run does
// not leak into the next one).
func (s *stack) cleanup() {
	if !s.destroyed {
		if out, err := s.try(15*time.Minute, "", "destroy", "--yes", "--skip-preview", "--suppress-progress"); err != nil {
			s.t.Errorf("cleanup: pulumi destroy: %v\n%s", err, tail(out, 40))
		}
	}
	prefix := s.prefix()
	for _, kind := range []struct{ list, rm []string }{
		{[]string{"ps", "-a", "--format", "{{.Names}}"}, []string{"rm", "-f", "-v"}},
		{[]string{"network", "ls", "--format", "{{.Name}}"}, []string{"network", "rm"}},
		{[]string{"volume", "ls", "--format", "{{.Name}}"}, []string{"volume", "rm", "-f"}},
	} {
		out, err := exec.Command("docker", kind.list...).Output()
		if err != nil {
			s.t.Errorf("cleanup: docker %v: %v", kind.list, err)
			continue
		}
		for _, name := range strings.Fields(string(out)) {
			if strings.HasPrefix(name, prefix) {
				s.t.Errorf("stack %s left %s %s behind", s.name, kind.list[0], name)
				exec.Command("docker", append(kind.rm, name)...).Run()
			}
		}
	}
	if s.destroyed {
		s.try(time.Minute, "", "stack", "rm", "--yes")
	}
}

// prefix starts the name of every resource and Docker object of the stack.
func (s *stack) prefix() string { return "notes-" + s.name }

func tail(s string, lines int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
// freePort is a TCP port that no socket on this machine uses, for a stack to publish. It comes
// from below the kernel's ephemeral range: a port the kernel hands out (127.0.0.1:0) is free only
// until an outgoing connection takes it as its source port, and with parallel tests under load
// one did before dockerd could bind it. Ports given to this process's tests are not given twice.
func freePort(t *testing.T) int {
	t.Helper()
	low := ephemeralLow()
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 1000 {
		p := 10000 + mathrand.IntN(low-10000)
		if portsGiven[p] {
			continue
		}
		// The wildcard address: a swarm's host-mode port binds every address.
		l, err := net.Listen("tcp", fmt.Sprintf(":%d", p))
		if err != nil {
			continue
		}
		l.Close()
		portsGiven[p] = true
		return p
	}
	t.Fatalf("no free port found between 10000 and %d", low)
	return 0
}

var (
	portsMu    sync.Mutex
	portsGiven = map[int]bool{}
)

// ephemeralLow is the first port of the kernel's ephemeral range (source ports of outgoing
// connections); 32768 when it cannot be read.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 32768
	}
	low, err := strconv.Atoi(f[0])
	if err != nil || low <= 11000 {
		return 32768
	}
	return low
}

func docker(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("docker", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}
