//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestSwarm is engine swarm on a single-node swarm (the local daemon; the test makes it a
// manager when it is not, and leaves the swarm afterwards only if it did that and no other
// service runs): up from scratch, an unchanged up, the secret scan (docker inspect of every task,
// docker service inspect, ps), a redeploy under a minute of load from a client that never
// retries, a version that never turns healthy refused twice while the old tasks serve, backup
// and restore, every make operation (scripts/ops.sh: status, logs, psql, exec, backup, restore,
// rollback), and a destroy that leaves no service, secret, config, network or volume of the stack.
func TestSwarm(t *testing.T) {
	t.Parallel()
	ensureSwarmManager(t)
	var s *stack
	t.Cleanup(func() { checkNoSwarmObjects(t, s.prefix()) }) // after the stack's own cleanup
	s, secrets := devStack(t, "sw")
	useSwarmEngine(s)
	s.set("notes:replicas", "2")
	s.set("notes:backups", "true")
	s.set("notes:rateLimit", "6000000") // see TestDeployLocal
	scan := newSecretScan(t, s.name, secrets)

	timed(t, "swarm: up from scratch", func() { s.up() })
	scan.now()
	scan.swarmObjects(s.prefix())
	timed(t, "swarm: unchanged up", func() { s.up("--expect-no-changes") })
	api := s.output("apiUrl")
	if got := s.output("engine"); got != "swarm" {
		t.Fatalf("engine output = %q", got)
	}
	t.Run("tasks of the new revision serve", func(t *testing.T) {
		checkAppTasks(t, s, s.output("revision"), 2)
	})
	t.Run("every task hardened as declared", func(t *testing.T) {
		seen := checkStackHardened(t, s.name, true)
		for _, role := range []string{"app", "nginx", "db", "backup"} {
			if !seen[role] {
				t.Errorf("no running %s task", role)
			}
		}
	})

	t.Run("redeploy with 2 tasks, plain client", func(t *testing.T) {
		swarmRedeployUnderPlainLoad(t, s, scan, api, "e2e-2")
	})
	t.Run("a version that never turns healthy is refused twice", func(t *testing.T) {
		swarmUnhealthyVersionRefused(t, s, scan, api)
	})
	t.Run("backup and restore", func(t *testing.T) {
		backupAndRestoreIn(t, serviceTask(t, s.output("databaseService")), serviceTask(t, s.output("backupService")),
			&http.Client{Timeout: 10 * time.Second}, api, s.get("notes:apiToken"))
	})
	t.Run("operations through scripts/ops.sh", func(t *testing.T) {
		swarmOperations(t, s, secrets)
	})
	scan.swarmObjects(s.prefix())
	scan.check(t)
	timed(t, "swarm: destroy", func() { s.destroy() })
}

// swarmOperations runs the make operations against the swarm stack (the checks of
// TestOperations), then make rollback: the previous appVersion serves, from new tasks.
func swarmOperations(t *testing.T, s *stack, secrets []string) {
	ops := opsFor(t, s)
	app := s.output("appService")
	node := docker(t, "node", "inspect", "self", "--format", "{{.Description.Hostname}}")
	status := []string{"engine swarm", "appVersion " + s.get("notes:appVersion"), s.output("healthUrl") + ": 200",
		app + " ", "2/2", app + ".1 ", app + ".2 ", "healthy", node}
	for _, key := range []string{"databaseService", "nginxService", "backupService"} {
		status = append(status, s.output(key)+" ", s.output(key)+".1 ")
	}
	checkOperations(t, ops, opsWant{
		replicas:  2,
		status:    status,
		logPrefix: app + ".",
		migration: s.output("migrationContainer"),
		api:       s.output("apiUrl"),
		secrets:   secrets,
	})

	t.Run("rollback to the previous appVersion", func(t *testing.T) {
		client := &http.Client{Timeout: 10 * time.Second}
		current := servedVersion(t, client, s.output("url"))
		rev := s.output("revision")
		ops.must(t, "", nil, "rollback", "--skip-preview", "--suppress-progress")
		if v := servedVersion(t, client, s.output("url")); v == current || v != s.output("appVersion") {
			t.Errorf("after rollback from %s: %s serves, appVersion output %s", current, v, s.output("appVersion"))
		}
		newRev := s.output("revision")
		if newRev == rev {
			t.Errorf("revision %s did not change with the rollback", rev)
		}
		checkAppTasks(t, s, newRev, 2)
	})
}

// useSwarmEngine puts a dev stack on engine swarm: host-mode ports bind every address (the test's
// traffic stays on 127.0.0.1), and Swarm cannot publish Postgres on loopback only, so no dbPort.
func useSwarmEngine(s *stack) {
	s.set("notes:engine", "swarm")
	s.set("notes:bindAddress", "0.0.0.0")
	s.set("notes:dbPort", "0")
}

// ensureSwarmManager fails the test unless the local daemon is a swarm manager. TestMain makes it
// one before any test starts: a swarm init from inside a test could run next to another test's
// containers-engine stack and break its DNS (moby#51491).
func ensureSwarmManager(t *testing.T) {
	t.Helper()
	if state := docker(t, "info", "--format", "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}"); state != "active true" {
		t.Fatalf("the local daemon's swarm state is %q, want a manager (TestMain inits the swarm for the swarm tests)", state)
	}
}

// checkNoSwarmObjects fails the test for every service, secret, config, network or volume named
// after the stack (and removes it, so a failed run does not leak into the next one).
func checkNoSwarmObjects(t *testing.T, prefix string) {
	for _, kind := range []string{"service", "secret", "config", "network", "volume"} {
		out, err := exec.Command("docker", kind, "ls", "--format", "{{.Name}}").Output()
		if err != nil {
			if kind == "service" || kind == "secret" || kind == "config" {
				continue // not a manager any more: nothing of the swarm can be left
			}
			t.Errorf("docker %s ls: %v", kind, err)
			continue
		}
		for _, name := range strings.Fields(string(out)) {
			if strings.HasPrefix(name, prefix) {
				t.Errorf("the destroyed stack left %s %s behind", kind, name)
				exec.Command("docker", kind, "rm", name).Run()
			}
		}
	}
}

// swarmObjects scans `docker service inspect` of the stack's services and the metadata of its
// secrets and configs (the API never returns a secret's data) like the containers.
func (s *secretScan) swarmObjects(prefix string) {
	var texts []string
	for _, kind := range []string{"service", "secret", "config"} {
		out, err := exec.Command("docker", kind, "ls", "--format", "{{.Name}}").Output()
		if err != nil {
			s.t.Errorf("docker %s ls: %v", kind, err)
			continue
		}
		var names []string
		for _, n := range strings.Fields(string(out)) {
			if strings.HasPrefix(n, prefix) {
				names = append(names, n)
			}
		}
		if len(names) == 0 {
			continue
		}
		info, err := exec.Command("docker", append([]string{kind, "inspect"}, names...)...).Output()
		if err != nil {
			s.t.Errorf("docker %s inspect: %v", kind, err)
			continue
		}
		texts = append(texts, kind+" inspect "+strings.Join(names, " ")+"\n"+string(info))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.scans++
	for _, text := range texts {
		where, _, _ := strings.Cut(text, "\n")
		for form, what := range s.forms {
			if strings.Contains(text, form) {
				s.findings[what+" in docker "+truncate(where, 120)] = true
			}
		}
	}
}

// appTasks are the running app task containers: name -> "revision health" (the revision from
// their NOTES_REVISION).
func appTasks(t *testing.T, s *stack) map[string]string {
	t.Helper()
	ids := strings.Fields(docker(t, "ps", "-q", "--filter", "label=com.docker.swarm.service.name="+s.output("appService")))
	tasks := map[string]string{}
	if len(ids) == 0 {
		return tasks
	}
	out := docker(t, append([]string{"inspect", "-f",
		`{{.Name}} {{range .Config.Env}}{{.}} {{end}}|{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}`}, ids...)...)
	for _, line := range strings.Split(out, "\n") {
		name, rest, _ := strings.Cut(strings.TrimPrefix(line, "/"), " ")
		env, health, _ := strings.Cut(rest, "|")
		rev := "none"
		for _, e := range strings.Fields(env) {
			if v, ok := strings.CutPrefix(e, "NOTES_REVISION="); ok {
				rev = v
			}
		}
		tasks[name] = rev + " " + health
	}
	return tasks
}

// checkAppTasks: exactly n app tasks run, all healthy and of revision rev, and nginx answers
// with rev.
func checkAppTasks(t *testing.T, s *stack, rev string, n int) {
	t.Helper()
	tasks := appTasks(t, s)
	healthy := 0
	for name, st := range tasks {
		if st == rev+" healthy" {
			healthy++
		} else {
			t.Errorf("app task %s is %q, want %q", name, st, rev+" healthy")
		}
	}
	if healthy != n {
		t.Errorf("%d healthy app tasks of revision %s, want %d: %v", healthy, rev, n, tasks)
	}
	resp := expectStatus(t, &http.Client{Timeout: 10 * time.Second}, s.output("healthUrl"), http.StatusOK)
	if got := resp.Header.Get("X-Notes-Revision"); got != rev {
		t.Errorf("X-Notes-Revision through nginx = %q, want %q", got, rev)
	}
}

// nginxTask is the running nginx task container's id.
func nginxTask(t *testing.T, s *stack) string {
	t.Helper()
	return serviceTask(t, s.output("nginxService"))
}

// serviceTask is the id of the one running task container of service.
func serviceTask(t *testing.T, service string) string {
	t.Helper()
	ids := strings.Fields(docker(t, "ps", "-q", "--filter", "label=com.docker.swarm.service.name="+service))
	if len(ids) != 1 {
		t.Fatalf("tasks of %s running: %v, want one", service, ids)
	}
	return ids[0]
}

// swarmRedeployUnderPlainLoad rolls a new appVersion under 60 s of mixed load from a client that
// never retries, and checks: no failed request, every acknowledged note stored; the nginx task
// kept its configuration, container and workers; every app task runs the new revision; the
// migration container is gone; no secret in docker inspect or ps meanwhile.
func swarmRedeployUnderPlainLoad(t *testing.T, s *stack, scan *secretScan, api, version string) {
	ng := nginxTask(t, s)
	hash, rev := s.output("nginxConfigHash"), s.output("revision")
	workers := nginxWorkers(t, ng)

	s.set("notes:appVersion", version)
	l := newPlainLoad(api, 16)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { l.run(ctx, 16); close(done) }()
	stopScan := scan.during()
	loadStart := time.Now()
	time.Sleep(5 * time.Second)
	timed(t, "swarm: code-change up ("+version+")", func() { s.up() })
	time.Sleep(max(5*time.Second, time.Minute-time.Since(loadStart)))
	cancel()
	<-done
	stopScan()
	l.report(t, fmt.Sprintf("swarm: redeploy to %s, 2 tasks, no Idempotency-Key, no retries", version))
	l.checkFailures(t)
	l.verifyAcked(t)

	if got := s.output("nginxConfigHash"); got != hash {
		t.Errorf("nginx configuration changed with the app deploy: %s -> %s", hash, got)
	}
	if got := nginxTask(t, s); got != ng {
		t.Errorf("the nginx task was replaced by the app deploy: %s -> %s", ng, got)
	} else if got := nginxWorkers(t, ng); got != workers {
		t.Errorf("nginx workers changed (a reload): %q -> %q", workers, got)
	}
	newRev := s.output("revision")
	if newRev == rev {
		t.Fatalf("revision %s did not change with appVersion", rev)
	}
	checkAppTasks(t, s, newRev, 2)
	names := strings.Fields(docker(t, "ps", "-a", "--format", "{{.Names}}"))
	for _, n := range names {
		if n == s.output("migrationContainer") {
			t.Errorf("the exited migration container %s was not removed", n)
		}
	}
}

// swarmUnhealthyVersionRefused deploys, from a copy of the repository, a service whose tasks exit
// at start, twice, under load: both `pulumi up` fail (Swarm rolls the update back), the old
// tasks keep serving, no request fails, and the failure names the tasks' errors. Then the good
// version deploys.
func swarmUnhealthyVersionRefused(t *testing.T, s *stack, scan *secretScan, api string) {
	oldRev := s.output("revision")
	good := useUnhealthyCopy(t, s)
	defer func() { s.root = good }()

	refusedTwiceUnderLoad(t, s, scan, api, "swarm: ", func(attempt int, out string) {
		if !strings.Contains(out, "non-zero exit (3)") {
			t.Errorf("pulumi up #%d does not show the tasks' error (non-zero exit (3)):\n%s", attempt, tail(out, 60))
		}
		checkAppTasks(t, s, oldRev, 2)
	})

	s.root = good
	s.set("notes:appVersion", "e2e-good")
	timed(t, "swarm: up of the good version", func() { s.up() })
	checkAppTasks(t, s, s.output("revision"), 2)
}
