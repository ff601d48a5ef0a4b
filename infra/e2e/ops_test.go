//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// scriptStack is a stack driven through scripts/stack.sh and scripts/ops.sh, the way an operator
// runs `make up`, `make status` and the rest. Its stack file, generated secrets, backend and
// passphrase live in a temp dir (NOTES_STACK_FILE, NOTES_GEN_DIR), not in the checkout.
type scriptStack struct {
	*stack
	file string // the stack file the scripts read, as Pulumi.<stack>.yaml would be
}

func newScriptStack(t *testing.T, prefix string, settings map[string]string) *scriptStack {
	t.Helper()
	if _, err := exec.LookPath("jq"); err != nil {
		t.Fatal("jq is not on PATH: scripts/ops.sh needs it (make setup installs it)")
	}
	root := projectRoot(t)
	dir := t.TempDir()
	name := "e2e" + prefix + randomSuffix(t)
	gen := filepath.Join(dir, "gen")
	s := &scriptStack{
		stack: &stack{
			t:          t,
			name:       name,
			root:       root,
			configFile: filepath.Join(gen, "Pulumi."+name+".yaml"),
		},
		file: filepath.Join(dir, "Pulumi."+name+".yaml"),
	}
	if err := os.MkdirAll(filepath.Join(dir, "state"), 0o700); err != nil {
		t.Fatal(err)
	}
	// The stack's own passphrase, not one a developer's environment points at.
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "PULUMI_CONFIG_PASSPHRASE_FILE=") })
	s.env = append(env,
		"STACK="+name,
		"NOTES_STACK_FILE="+s.file,
		"NOTES_GEN_DIR="+gen,
		"PULUMI_BACKEND_URL=file://"+filepath.Join(dir, "state"),
		"PULUMI_CONFIG_PASSPHRASE="+randomSecret(t),
		"PULUMI_SKIP_UPDATE_CHECK=true",
		"PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true",
		"NO_COLOR=1",
	)
	s.writeFile(settings)
	return s
}

// writeFile writes the stack file: Pulumi.dev.yaml's settings with these changes.
func (s *scriptStack) writeFile(settings map[string]string) {
	s.t.Helper()
	base, err := os.ReadFile(filepath.Join(s.root, "Pulumi.dev.yaml"))
	if err != nil {
		s.t.Fatal(err)
	}
	plain, err := plainConfig(base)
	if err != nil {
		s.t.Fatal(err)
	}
	var doc struct {
		Config map[string]any `yaml:"config"`
	}
	if err := yaml.Unmarshal(plain, &doc); err != nil {
		s.t.Fatal(err)
	}
	for k, v := range settings {
		doc.Config[k] = v
	}
	out, err := yaml.Marshal(map[string]any{"config": doc.Config})
	if err != nil {
		s.t.Fatal(err)
	}
	if err := os.WriteFile(s.file, out, 0o600); err != nil {
		s.t.Fatal(err)
	}
}

// script runs scripts/NAME with the stack's environment (plus extra variables) and stdin, and
// returns its combined output and error.
func (s *scriptStack) script(timeout time.Duration, stdin string, extra []string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(s.root, "scripts", name), args...)
	cmd.Dir = s.root
	cmd.Env = append(slices.Clone(s.env), extra...)
	return runLogged(s.t, cmd, stdin, "scripts/"+name+" "+strings.Join(args, " "))
}

func (s *scriptStack) mustScript(timeout time.Duration, stdin string, extra []string, name string, args ...string) string {
	s.t.Helper()
	out, err := s.script(timeout, stdin, extra, name, args...)
	if err != nil {
		s.t.Fatalf("scripts/%s %s: %v\n%s", name, strings.Join(args, " "), err, tail(out, 40))
	}
	return out
}

func (s *scriptStack) up() {
	s.t.Helper()
	s.mustScript(20*time.Minute, "", nil, "stack.sh", "up", "--skip-preview", "--suppress-progress")
}

// opsScript runs scripts/ops.sh ARGS on one stack with stdin and extra environment variables and
// returns its combined output and error: the make targets as an operator runs them.
type opsScript func(stdin string, extra []string, args ...string) (string, error)

func (o opsScript) must(t *testing.T, stdin string, extra []string, args ...string) string {
	t.Helper()
	out, err := o(stdin, extra, args...)
	if err != nil {
		t.Fatalf("scripts/ops.sh %s: %v\n%s", strings.Join(args, " "), err, tail(out, 40))
	}
	return out
}

// psql runs SQL through `scripts/ops.sh psql` (stdin, no terminal) and returns psql's output.
func (o opsScript) psql(t *testing.T, sql string) string {
	t.Helper()
	return strings.TrimSpace(o.must(t, sql, nil, "psql"))
}

func (s *scriptStack) ops() opsScript {
	return func(stdin string, extra []string, args ...string) (string, error) {
		return s.script(15*time.Minute, stdin, extra, "ops.sh", args...)
	}
}

// servedVersion is the version the service reports at / (built from notes:appVersion).
func servedVersion(t *testing.T, c *http.Client, url string) string {
	t.Helper()
	resp, err := c.Get(url + "/")
	if err != nil {
		t.Fatalf("GET %s/: %v", url, err)
	}
	defer resp.Body.Close()
	var body struct {
		Version string `json:"version"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("GET %s/: %v", url, err)
	}
	return body.Version
}

// gitStatus is `git status --porcelain` of the checkout, or "" outside a git checkout.
func gitStatus(t *testing.T, root string) string {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		return ""
	}
	out, err := exec.Command("git", "-C", root, "status", "--porcelain").Output()
	if err != nil {
		return ""
	}
	return string(out)
}

// opsFor is scripts/ops.sh on a stack the harness deployed. The scripts keep the settings and
// the secrets of a stack in two files (scripts/stack-env.sh merges them before each pulumi
// command and refuses encrypted values in the stack file), so the harness's one config file is
// split into the two; later config changes of s are not seen.
func opsFor(t *testing.T, s *stack) opsScript {
	t.Helper()
	raw, err := os.ReadFile(s.configFile)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("%s: %v", s.configFile, err)
	}
	config, _ := doc["config"].(map[string]any)
	plain, secure := map[string]any{}, map[string]any{}
	for k, v := range config {
		if m, ok := v.(map[string]any); ok && m["secure"] != nil {
			secure[k] = v
		} else {
			plain[k] = v
		}
	}
	doc["config"] = secure // with the encryption salt
	dir := t.TempDir()
	file, gen := filepath.Join(dir, "Pulumi."+s.name+".yaml"), filepath.Join(dir, "gen")
	writeYAML(t, file, map[string]any{"config": plain})
	writeYAML(t, filepath.Join(gen, s.name+".secrets.yaml"), doc)
	env := append(slices.Clone(s.env), "STACK="+s.name, "NOTES_STACK_FILE="+file, "NOTES_GEN_DIR="+gen)
	return func(stdin string, extra []string, args ...string) (string, error) {
		cmd := exec.Command(filepath.Join(s.root, "scripts", "ops.sh"), args...)
		cmd.Dir = s.root
		cmd.Env = append(slices.Clone(env), extra...)
		return runLogged(t, cmd, stdin, "scripts/ops.sh "+strings.Join(args, " "))
	}
}

// writeYAML writes v as Pulumi writes stack files (two-space indent), creating the folder.
func writeYAML(t *testing.T, path string, v any) {
	t.Helper()
	var b strings.Builder
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
}

// opsOn runs scripts/ops.sh on a stack the harness deployed and returns the output.
func opsOn(t *testing.T, s *stack, stdin string, args ...string) string {
	t.Helper()
	return opsFor(t, s).must(t, stdin, nil, args...)
}

// opsWant is what the shared operation checks expect of a stack.
type opsWant struct {
	replicas  int      // app replicas (tasks)
	status    []string // in make status, besides the last backup
	logPrefix string   // starts the lines of make logs of the app (replica or task)
	migration string   // the migration container's name (output migrationContainer)
	api       string   // the apiUrl output
	secrets   []string // must show in no output
}

// checkOperations runs make psql, exec, backup, status, restore and logs against a deployed
// stack, on either engine, through scripts/ops.sh.
func checkOperations(t *testing.T, ops opsScript, want opsWant) {
	var outputs []string // every output, for the secret check at the end
	run := func(stdin string, extra []string, args ...string) (string, error) {
		out, err := ops(stdin, extra, args...)
		outputs = append(outputs, out)
		return out, err
	}
	must := func(t *testing.T, stdin string, extra []string, args ...string) string {
		t.Helper()
		out, err := run(stdin, extra, args...)
		if err != nil {
			t.Fatalf("scripts/ops.sh %s: %v\n%s", strings.Join(args, " "), err, tail(out, 40))
		}
		return out
	}
	// rows is a digest of every note, as psql prints it.
	rows := func(t *testing.T) string {
		t.Helper()
		out := must(t, "SELECT 'rows=' || count(*) || ' ' || coalesce(md5(string_agg(id || '|' || title || '|' || body || '|' || created_at, ',' ORDER BY id)), '-') FROM notes;", nil, "psql")
		for _, line := range strings.Split(out, "\n") {
			if l := strings.TrimSpace(line); strings.HasPrefix(l, "rows=") {
				return l
			}
		}
		t.Fatalf("psql printed no rows= line:\n%s", out)
		return ""
	}

	t.Run("psql as the owner, SQL on stdin", func(t *testing.T) {
		if out := must(t, "SELECT 'user=' || current_user;", nil, "psql"); !strings.Contains(out, "user=notes") {
			t.Errorf("psql printed %q, want the owner notes", out)
		}
	})

	t.Run("exec in a replica", func(t *testing.T) {
		for n := 1; n <= want.replicas; n++ {
			must(t, "", []string{"REPLICA=" + strconv.Itoa(n)}, "exec", "/notes", "healthcheck", "--url", "http://127.0.0.1:8080/readyz")
		}
		if out, err := run("", nil, "exec", "/notes", "no-such-command"); err == nil {
			t.Errorf("exec of a failing command succeeded:\n%s", out)
		}
		over := "REPLICA=" + strconv.Itoa(want.replicas+1)
		if out, err := run("", []string{over}, "exec", "/notes", "healthcheck"); err == nil || !strings.Contains(out, over) {
			t.Errorf("exec in replica %d of %d: err %v, output:\n%s", want.replicas+1, want.replicas, err, out)
		}
	})

	var dump string
	t.Run("backup and status", func(t *testing.T) {
		out := strings.TrimSpace(must(t, "", nil, "backup"))
		dump = filepath.Base(dumpPath(out))
		if !strings.HasSuffix(dump, ".dump") {
			t.Fatalf("backup printed %q, want the dump's path", out)
		}
		status := must(t, "", nil, "status")
		t.Logf("make status:\n%s", status)
		for _, w := range append(slices.Clone(want.status), "last backup: "+dump) {
			if !strings.Contains(status, w) {
				t.Errorf("status lacks %q:\n%s", w, status)
			}
		}
	})

	t.Run("restore with YES=1, then migrate", func(t *testing.T) {
		if dump == "" {
			t.Skip("no dump")
		}
		backedUp := rows(t)
		if out, err := run("", nil, "restore", dump); err == nil || !strings.Contains(out, "YES=1") {
			t.Fatalf("restore without a terminal or YES=1: err %v, output:\n%s", err, out)
		}
		if out, err := run("", []string{"YES=1"}, "restore", "notes-19700101T000000Z.dump"); err == nil ||
			!strings.Contains(out, "no such dump") || strings.Contains(out, "phase migrate:") {
			t.Errorf("restore of a missing dump: err %v, want a clear error before any migration:\n%s", err, tail(out, 20))
		} else {
			t.Logf("make restore of a missing dump:\n%s", tail(out, 3))
		}
		if got := rows(t); got != backedUp {
			t.Fatalf("a refused restore changed the notes: %s, want %s", got, backedUp)
		}
		must(t, "DELETE FROM notes;", nil, "psql")
		out := must(t, "", []string{"YES=1"}, "restore", dump)
		if got := rows(t); got != backedUp {
			t.Errorf("after restore: %s, want %s\nrestore said:\n%s", got, backedUp, tail(out, 20))
		}
		if !strings.Contains(out, "phase migrate: "+want.migration+" exited 0") {
			t.Errorf("no migration run after the restore (want %q):\n%s", "phase migrate: "+want.migration+" exited 0", tail(out, 30))
		}
		l := newLoad(want.api, 1)
		l.post(context.Background(), "after ops restore")
		if len(l.failures) > 0 {
			t.Errorf("POST after restore: %v", l.failures)
		}
	})

	t.Run("logs readable", func(t *testing.T) {
		out := must(t, "", []string{"FOLLOW=0", "TAIL=20"}, "logs", "app")
		t.Logf("make logs SERVICE=app (tail):\n%s", tail(out, 3))
		if !strings.Contains(out, want.logPrefix) {
			t.Errorf("logs lines are not prefixed with %q:\n%s", want.logPrefix, tail(out, 10))
		}
		if strings.Contains(out, `{"time"`) {
			t.Errorf("logs still show raw JSON lines:\n%s", tail(out, 10))
		}
		// The migration container is gone: the last run's output comes from the Pulumi state.
		out = must(t, "", []string{"FOLLOW=0"}, "logs", "migrate")
		t.Logf("make logs SERVICE=migrate:\n%s", tail(out, 6))
		if !strings.Contains(out, want.migration+"  phase migrate: "+want.migration+" exited 0") {
			t.Errorf("logs migrate lacks the last run's final line:\n%s", tail(out, 10))
		}
		if out, err := run("", []string{"FOLLOW=0"}, "logs", "nonsense"); err == nil || !strings.Contains(out, "SERVICE=nonsense") {
			t.Errorf("logs of an unknown service: err %v, output:\n%s", err, out)
		}
	})

	if containsAny(strings.Join(outputs, "\n"), want.secrets) {
		t.Error("an operation printed a password")
	}
}

// TestOperations deploys through scripts/stack.sh and uses every operation of scripts/ops.sh (the
// make targets status, logs, backup, restore, psql, exec, rollback) against the real stack.
func TestOperations(t *testing.T) {
	t.Parallel()
	root := projectRoot(t)
	before := gitStatus(t, root)
	settings := map[string]string{
		"notes:httpPort":   strconv.Itoa(freePort(t)),
		"notes:dbPort":     strconv.Itoa(freePort(t)),
		"notes:replicas":   "2",
		"notes:appVersion": "e2e-ops-1",
	}
	s := newScriptStack(t, "o", settings)
	s.up()
	t.Cleanup(s.cleanup)
	client := &http.Client{Timeout: 10 * time.Second}
	url := s.output("url")
	if v := servedVersion(t, client, url); v != "e2e-ops-1" {
		t.Fatalf("version served after the first deploy = %q, want e2e-ops-1", v)
	}

	secrets, err := os.ReadFile(filepath.Join(filepath.Dir(s.configFile), s.name+".secrets.yaml"))
	if err != nil {
		t.Fatalf("scripts/stack.sh did not write the generated secrets file: %v", err)
	}
	if n := strings.Count(string(secrets), "secure:"); n != 3 {
		t.Errorf("secrets file holds %d secure values, want dbPassword, appDbPassword and apiToken:\n%s", n, secrets)
	}
	if plain, _ := os.ReadFile(s.file); strings.Contains(string(plain), "secure:") || strings.Contains(string(plain), "encryptionsalt") {
		t.Errorf("scripts/stack.sh wrote secrets into the stack file:\n%s", plain)
	}

	l := newLoad(s.output("apiUrl"), 1)
	for i := range 3 {
		l.post(context.Background(), fmt.Sprintf("ops %d", i))
	}
	if len(l.failures) > 0 {
		t.Fatalf("creating notes: %v", l.failures)
	}

	ops := s.ops()
	if out := ops.psql(t, "SELECT 'count=' || count(*) FROM notes WHERE title LIKE 'ops %';"); !strings.Contains(out, "count=3") {
		t.Errorf("psql printed %q, want the 3 notes", out)
	}
	checkOperations(t, ops, opsWant{
		replicas: 2,
		status: append(s.stringsOutput("replicaNames"), s.output("databaseContainer"), s.output("nginxContainer"),
			"healthy", "appVersion e2e-ops-1", s.output("healthUrl")+": 200"),
		logPrefix: s.stringsOutput("replicaNames")[0] + "  ",
		migration: s.output("migrationContainer"),
		api:       s.output("apiUrl"),
		secrets:   []string{s.get("notes:dbPassword"), s.get("notes:appDbPassword")},
	})

	t.Run("rollback to the previous appVersion", func(t *testing.T) {
		settings["notes:appVersion"] = "e2e-ops-2"
		s.writeFile(settings)
		s.up()
		if v := servedVersion(t, client, url); v != "e2e-ops-2" {
			t.Fatalf("version served after the second deploy = %q, want e2e-ops-2", v)
		}
		v2 := s.stringsOutput("replicaNames")
		ops.must(t, "", nil, "rollback", "--skip-preview", "--suppress-progress")
		if v := servedVersion(t, client, url); v != "e2e-ops-1" {
			t.Errorf("version served after rollback = %q, want e2e-ops-1", v)
		}
		if v := s.output("appVersion"); v != "e2e-ops-1" {
			t.Errorf("appVersion output after rollback = %q, want e2e-ops-1", v)
		}
		after := s.stringsOutput("replicaNames")
		if len(after) != 2 {
			t.Errorf("replicas after rollback: %v, want 2", after)
		}
		running := strings.Fields(docker(t, "ps", "--format", "{{.Names}}"))
		for _, old := range v2 {
			if slices.Contains(after, old) || slices.Contains(running, old) {
				t.Errorf("replica %s of e2e-ops-2 still runs after the rollback", old)
			}
		}
		expectStatus(t, client, s.output("healthUrl"), http.StatusOK)
	})

	s.mustScript(15*time.Minute, "", nil, "stack.sh", "destroy", "--skip-preview", "--suppress-progress")
	s.destroyed = true
	if after := gitStatus(t, root); after != before {
		t.Errorf("the operations changed the checkout's git status:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}
