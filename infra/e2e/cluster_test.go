//go:build e2e

package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
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

	"github.com/notes-stack/notes/internal/testing/cluster"
)

// TestCluster is engine swarm on three hosts: three Docker daemons in network namespaces of their
// own (internal/testing/cluster), the manager and two workers, all reached over ssh as a user
// reaches VMs. The stack's program joins the workers itself. Node 1 is the manager with the
// db and edge labels, node 2 a worker with edge, node 3 a plain worker. Postgres and nginx are
// copied into every node (the stand-in for a pull from Docker Hub). The app image first goes
// through the stack's own registry on the manager (no notes:pushRegistry: TLS with the stack's
// CA, which every node's daemon must trust, since the harness accepts plain HTTP only on port
// cluster.PlainRegistryPort), then, from the redeploy on, through a registry:2 the harness runs
// on node 1 as a user's notes:pushRegistry (plain HTTP).
//
// Up from scratch; the app's tasks on at least two nodes and nginx on both edge nodes; ops.sh
// exec on a task of another node stops and names it; a redeploy to a new version and to
// notes:pushRegistry under a minute of load from a client that never retries: 0 failed, the
// stack's registry and the nodes' trust of it gone; node 3's daemon
// killed under load: the failed requests and the seconds until none fail, every acknowledged
// write read back, its tasks rescheduled; node 3 back; destroy leaves nothing of the stack on
// any node and the workers out of the swarm. The time of each step is logged ("timing: ...").
func TestCluster(t *testing.T) {
	t.Parallel()
	client := &http.Client{Timeout: 10 * time.Second}
	var c *cluster.Cluster
	timed(t, "cluster: three nodes up", func() { c = cluster.New(t, 3) })
	n1, n2, n3 := c.Nodes[0], c.Nodes[1], c.Nodes[2]
	var goImage string
	timed(t, "cluster: Go build image with the module cache", func() { goImage = warmGoImage(t) })
	timed(t, "cluster: images copied into the nodes", func() {
		c.LoadImages(c.Nodes, "postgres:17", "nginx:1.27")
		c.LoadImages([]*cluster.Node{n1}, "registry:2", goImage)
	})
	// The harness's registry, not the stack's: what a user's pushRegistry would be.
	port := strconv.Itoa(cluster.PlainRegistryPort)
	if _, err := n1.Docker("run", "-d", "--name", "registry", "--restart", "always", "-p", port+":5000", "registry:2"); err != nil {
		t.Fatal(err)
	}
	pushRegistry := n1.Addr + ":" + port
	ownRegistry := n1.Addr + ":5443"

	var s *stack
	t.Cleanup(func() { checkNothingOnNodes(t, c, s.prefix()) }) // after the stack's own cleanup
	s, _ = devStack(t, "cl")
	s.set("notes:engine", "swarm")
	s.set("notes:dockerHost", n1.SSHHost())
	s.setList("notes:sshOpts", c.SSH.Opts)
	s.set("notes:bindAddress", "0.0.0.0")
	s.set("notes:dbPort", "0")
	s.set("notes:httpPort", "8080")
	s.set("notes:replicas", "3")
	s.set("notes:backups", "false")
	s.set("notes:rateLimit", "6000000") // see TestDeployLocal
	s.set("notes:registryPort", "5443")
	s.set("notes:goImage", goImage)
	s.setList("notes:managerLabels", []string{"db", "edge"})
	s.setPath("notes:workers[0].host", n2.SSHHost())
	s.setPath("notes:workers[0].labels[0]", "edge")
	s.setPath("notes:workers[1].host", n3.SSHHost())

	timed(t, "cluster: up from scratch", func() { s.up() })
	api := s.output("apiUrl")
	if !strings.Contains(api, n1.Addr) {
		t.Fatalf("apiUrl %s is not on the manager %s", api, n1.Addr)
	}
	ids := nodeIDs(t, c)
	t.Run("app tasks on several nodes, nginx on both edge nodes", func(t *testing.T) {
		app := taskNodes(t, n1, s.output("appService"))
		if len(app) != 3 || len(uniq(app)) < 2 {
			t.Errorf("app tasks run on nodes %v, want 3 tasks on at least 2 nodes", names(app, ids))
		}
		ng := taskNodes(t, n1, s.output("nginxService"))
		slices.Sort(ng)
		want := []string{ids[n1], ids[n2]}
		slices.Sort(want)
		if !slices.Equal(ng, want) {
			t.Errorf("nginx tasks run on %v, want nodes 1 and 2", names(ng, ids))
		}
		db := taskNodes(t, n1, s.output("databaseService"))
		if len(db) != 1 || db[0] != ids[n1] {
			t.Errorf("postgres runs on %v, want node 1 (db)", names(db, ids))
		}
		checkImageIn(t, n1, s.output("appService"), ownRegistry)
		if got := s.output("imageRegistry"); got != ownRegistry {
			t.Errorf("output imageRegistry = %q, want %q", got, ownRegistry)
		}
		reg := taskNodes(t, n1, s.output("registryService"))
		if len(reg) != 1 || reg[0] != ids[n1] {
			t.Errorf("the stack's registry runs on %v, want node 1 (the manager)", names(reg, ids))
		}
		checkRegistryTLS(t, ownRegistry)
		// Both edge nodes answer.
		for _, n := range []*cluster.Node{n1, n2} {
			expectStatus(t, client, fmt.Sprintf("http://%s:8080/readyz", n.Addr), 200)
		}
	})
	timed(t, "cluster: unchanged up", func() { s.up("--expect-no-changes") })
	t.Run("ops.sh exec on a task of another node names that node", func(t *testing.T) {
		checkOpsOtherNode(t, s, n1, ids)
	})

	t.Run("redeploy under load, plain client", func(t *testing.T) {
		s.set("notes:appVersion", "e2e-2")
		s.set("notes:pushRegistry", pushRegistry)
		l := newPlainLoad(api, 16)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { l.run(ctx, 16); close(done) }()
		start := time.Now()
		time.Sleep(5 * time.Second)
		timed(t, "cluster: code-change up (e2e-2)", func() { s.up() })
		time.Sleep(max(5*time.Second, time.Minute-time.Since(start)))
		cancel()
		<-done
		l.report(t, "cluster: redeploy to e2e-2, 3 tasks on 3 nodes, no Idempotency-Key, no retries")
		l.checkFailures(t)
		l.verifyAcked(t)
		checkImageIn(t, n1, s.output("appService"), pushRegistry)
		if out, err := n1.Docker("service", "ls", "-q", "--filter", "name="+s.prefix()+"-registry"); err != nil || out != "" {
			t.Errorf("the stack's registry is still there with notes:pushRegistry set: %q (%v)", out, err)
		}
		if _, err := os.Stat(filepath.Join(cluster.CertsDir, ownRegistry)); !os.IsNotExist(err) {
			t.Errorf("%s/%s is still there after the stack's registry went (%v)", cluster.CertsDir, ownRegistry, err)
		}
	})

	t.Run("a worker dies under load", func(t *testing.T) {
		l := newPlainLoad(api, 16)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { l.run(ctx, 16); close(done) }()
		time.Sleep(10 * time.Second)
		before := taskNodes(t, n1, s.output("appService"))
		killed := time.Now()
		n3.Kill()
		t.Logf("cluster: killed node 3 (%d of 3 app tasks on it)", count(before, ids[n3]))
		// Until the swarm has three app tasks on the living nodes again, then 20 s more.
		var rescheduled time.Duration
		for deadline := time.Now().Add(3 * time.Minute); time.Now().Before(deadline); time.Sleep(time.Second) {
			nodes := taskNodes(t, n1, s.output("appService"))
			if len(nodes) == 3 && !slices.Contains(nodes, ids[n3]) {
				rescheduled = time.Since(killed)
				break
			}
		}
		if rescheduled == 0 {
			t.Errorf("the app's tasks were not rescheduled off the dead node within 3 minutes")
		}
		time.Sleep(20 * time.Second)
		cancel()
		<-done
		l.report(t, "cluster: node 3 killed under load")
		l.mu.Lock()
		// Seconds until none fail: the last failed request's start after the kill (a request
		// sent later never failed), and when it failed.
		var lastSent, lastFailed time.Duration
		for _, f := range l.failed {
			lastSent, lastFailed = max(lastSent, f.sent.Sub(killed)), max(lastFailed, f.at.Sub(killed))
		}
		failed := len(l.failures)
		for i, f := range l.failures {
			if i == 10 {
				break
			}
			t.Logf("failed request: %s", f)
		}
		l.mu.Unlock()
		// The slowest answers are the requests that met a dead task and were sent on by nginx
		// after its proxy_read_timeout.
		var slow int
		for _, d := range l.latencies {
			if d >= 5*time.Second {
				slow++
			}
		}
		last := "none failed"
		if failed > 0 {
			last = fmt.Sprintf("the last failed one was sent %.1f s after the kill and failed at %.1f s", lastSent.Seconds(), lastFailed.Seconds())
		}
		t.Logf("node loss: %d failed requests of %d (%s); %d answered after 5 s or more; app tasks back to 3 on the living nodes after %.1f s",
			failed, len(l.latencies), last, slow, rescheduled.Seconds())
		if len(l.acked) == 0 {
			t.Error("no write was acknowledged during the node loss")
		}
		l.verifyAcked(t) // no acknowledged write lost
	})

	timed(t, "cluster: node 3 back", func() {
		n3.Restart()
		for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(time.Second) {
			st := strings.TrimSpace(mustDocker(t, n1, "node", "inspect", "-f", "{{.Status.State}}", ids[n3]))
			if st == "ready" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node 3 is %q two minutes after its restart, want ready", st)
			}
		}
	})
	expectStatus(t, client, s.output("healthUrl"), 200)
	timed(t, "cluster: destroy", func() { s.destroy() })
	for _, n := range []*cluster.Node{n2, n3} {
		if st, err := n.Docker("info", "--format", "{{.Swarm.LocalNodeState}}"); err != nil || st != "inactive" {
			t.Errorf("worker %s after destroy: swarm state %q (%v), want inactive (it left)", n.Addr, st, err)
		}
	}
}

// checkImageIn checks that service runs its image by digest from registry.
func checkImageIn(t *testing.T, mgr *cluster.Node, service, registry string) {
	t.Helper()
	img := strings.TrimSpace(mustDocker(t, mgr, "service", "inspect", "-f", "{{.Spec.TaskTemplate.ContainerSpec.Image}}", service))
	if !strings.HasPrefix(img, registry+"/") || !strings.Contains(img, "@sha256:") {
		t.Errorf("app image %q is not a reference by digest into %s", img, registry)
	}
}

// checkRegistryTLS checks that the stack's registry at addr speaks TLS with a certificate for
// its address that the CA the nodes were given verifies, and that nothing else does.
func checkRegistryTLS(t *testing.T, addr string) {
	t.Helper()
	ca, err := os.ReadFile(filepath.Join(cluster.CertsDir, addr, "ca.crt"))
	if err != nil {
		t.Fatalf("the nodes' trust of the stack's registry: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		t.Fatalf("%s/%s/ca.crt holds no certificate", cluster.CertsDir, addr)
	}
	for _, tc := range []struct {
		name  string
		roots *x509.CertPool
		ok    bool
	}{{"the stack's CA", pool, true}, {"the system roots", nil, false}} {
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: tc.roots}}}
		resp, err := c.Get("https://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
		}
		switch {
		case tc.ok && (err != nil || resp.StatusCode != 200):
			t.Errorf("GET https://%s/v2/ trusting %s: %v, want 200", addr, tc.name, err)
		case !tc.ok && err == nil:
			t.Errorf("GET https://%s/v2/ trusting %s: %s, want a certificate error", addr, tc.name, resp.Status)
		}
	}
}

// checkOpsOtherNode runs `ops.sh exec` on an app task of a worker: it must stop and say that
// the task runs on another node than the manager, and name it.
func checkOpsOtherNode(t *testing.T, s *stack, mgr *cluster.Node, ids map[*cluster.Node]string) {
	t.Helper()
	var slot, node string
	for _, id := range strings.Fields(mustDocker(t, mgr, "service", "ps", "-q", "--filter", "desired-state=running", s.output("appService"))) {
		f := strings.Fields(mustDocker(t, mgr, "inspect", "-f", "{{.Slot}} {{.NodeID}}", id))
		if len(f) == 2 && f[1] != ids[mgr] {
			slot, node = f[0], f[1]
			break
		}
	}
	if slot == "" {
		t.Skip("every app task runs on the manager: no task of another node to exec into")
	}
	name := strings.TrimSpace(mustDocker(t, mgr, "node", "inspect", "-f", "{{.Description.Hostname}}", node))
	got, err := opsFor(t, s)("", []string{"REPLICA=" + slot}, "exec", "/notes", "version")
	if err == nil {
		t.Fatalf("ops.sh exec on slot %s (node %s) succeeded, want it to stop:\n%s", slot, node, got)
	}
	if !strings.Contains(got, "runs on node "+name) || !strings.Contains(got, "not on the manager") {
		t.Errorf("ops.sh exec on slot %s (a task on node %s): %q, want it to name the node and say it is not the manager", slot, name, got)
	}
}

// warmGoImage is golang:1.26 with the module's dependencies downloaded and compiled, and
// GOPROXY=off: the nodes have no way out, so the image build on the manager must find every
// module in the image. Built on the host's daemon from the same first steps as the
// Dockerfile's build stage (so its build cache answers), tagged by go.sum's hash, removed at
// the end.
func warmGoImage(t *testing.T) string {
	t.Helper()
	root := projectRoot(t)
	dir := t.TempDir()
	for _, f := range []string{"go.mod", "go.sum"} {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dockerfile, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	// The Dockerfile's deps stage, then no module proxy.
	text := string(dockerfile)
	start := strings.Index(text, "ARG GO_IMAGE")
	end := strings.Index(text, "FROM deps AS build")
	if start < 0 || end < 0 {
		t.Fatal("Dockerfile: cannot find the deps stage (ARG GO_IMAGE ... FROM deps AS build)")
	}
	warm := text[start:end] + "ENV GOPROXY=off GOFLAGS=-mod=mod\n"
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(warm), 0o644); err != nil {
		t.Fatal(err)
	}
	tag := "notes-e2e-gowarm:" + randomSuffix(t)
	cmd := exec.Command("docker", "build", "-q", "-t", tag, dir)
	cmd.Env = append(os.Environ(), "DOCKER_BUILDKIT=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", tag, err, out)
	}
	// --no-prune keeps its layers as build cache for the next run.
	t.Cleanup(func() { exec.Command("docker", "rmi", "--no-prune", tag).Run() })
	return tag
}

// nodeIDs maps each node to its swarm node id.
func nodeIDs(t *testing.T, c *cluster.Cluster) map[*cluster.Node]string {
	t.Helper()
	ids := map[*cluster.Node]string{}
	for _, n := range c.Nodes {
		ids[n] = strings.TrimSpace(mustDocker(t, n, "info", "--format", "{{.Swarm.NodeID}}"))
	}
	return ids
}

// taskNodes are the node ids of service's running tasks, as the manager sees them.
func taskNodes(t *testing.T, mgr *cluster.Node, service string) []string {
	t.Helper()
	out := mustDocker(t, mgr, "service", "ps", "-q", "--filter", "desired-state=running", service)
	var nodes []string
	for _, id := range strings.Fields(out) {
		st := strings.Fields(mustDocker(t, mgr, "inspect", "-f", "{{.NodeID}} {{.Status.State}}", id))
		if len(st) == 2 && st[1] == "running" {
			nodes = append(nodes, st[0])
		}
	}
	return nodes
}

func mustDocker(t *testing.T, n *cluster.Node, args ...string) string {
	t.Helper()
	out, err := n.Docker(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func uniq(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return slices.Compact(c)
}

func count(s []string, v string) int {
	n := 0
	for _, x := range s {
		if x == v {
			n++
		}
	}
	return n
}

// names shows node ids as "node N".
func names(nodes []string, ids map[*cluster.Node]string) []string {
	var out []string
	for _, id := range nodes {
		name := id
		for n, nid := range ids {
			if nid == id {
				name = fmt.Sprintf("node %d", n.Index)
			}
		}
		out = append(out, name)
	}
	return out
}

// checkNothingOnNodes fails the test for every container, service, secret, config, network or
// volume named after the stack on any node.
func checkNothingOnNodes(t *testing.T, c *cluster.Cluster, prefix string) {
	for _, n := range c.Nodes {
		for _, kind := range [][]string{
			{"ps", "-a", "--format", "{{.Names}}"}, {"service", "ls", "--format", "{{.Name}}"},
			{"secret", "ls", "--format", "{{.Name}}"}, {"config", "ls", "--format", "{{.Name}}"},
			{"network", "ls", "--format", "{{.Name}}"}, {"volume", "ls", "--format", "{{.Name}}"},
		} {
			out, err := n.Docker(kind...)
			if err != nil {
				continue // a worker is no manager: no services, secrets or configs to list
			}
			for _, name := range strings.Fields(out) {
				if strings.HasPrefix(strings.TrimPrefix(name, "/"), prefix) {
					t.Errorf("node %d: the destroyed stack left %s %s", n.Index, kind[0], name)
				}
			}
		}
	}
}
