package main

import (
	"slices"
	"strings"
	"testing"
)

const testWorkers = `[{"host": "ssh://deploy@10.0.0.12", "labels": ["db"]}, {"host": "ssh://deploy@10.0.0.13:2222", "labels": ["edge"]}]`

// clusterConfig is the swarm dev stack on a manager over ssh with two workers.
func clusterConfig(t *testing.T, set map[string]string) map[string]string {
	t.Helper()
	cfg := swarmConfig(t, map[string]string{
		"notes:dockerHost":   "ssh://deploy@10.0.0.11",
		"notes:pushRegistry": "10.0.0.11:5000",
		"notes:workers":      testWorkers,
		"notes:replicas":     "3",
	})
	for k, v := range set {
		cfg[k] = v
	}
	return cfg
}

func TestSwarmCluster(t *testing.T) {
	m := mustDeploy(t, "dev", clusterConfig(t, map[string]string{"notes:maxReplicasPerNode": "2", "notes:managerLabels": `["edge"]`}))

	tok := m.named(t, "notes-dev-swarm-join-token")
	if !strings.Contains(str(prop(tok, "create")), "ssh") || !strings.Contains(str(prop(tok, "create")), "token") {
		t.Errorf("join token command = %q, want swarm-worker.sh token over ssh", str(prop(tok, "create")))
	}
	mgr := m.named(t, "notes-dev-swarm-manager")
	workers := map[string]string{"10.0.0.12-22": "10.0.0.12", "10.0.0.13-2222": "10.0.0.13"}
	for suffix, host := range workers {
		w := m.named(t, "notes-dev-swarm-worker-"+suffix)
		create, del := str(prop(w, "create")), str(prop(w, "delete"))
		if !strings.Contains(create, "-- "+host+" ") || !strings.Contains(create, "join") {
			t.Errorf("worker %s joins with %q, want swarm-worker.sh join over ssh to %s", suffix, create, host)
		}
		for _, step := range []string{"drain", "leave", "remove"} {
			if !strings.Contains(del, step) {
				t.Errorf("worker %s: delete %q does not %s", suffix, del, step)
			}
		}
		if !dependsOn(w, urnOf(tok)) {
			t.Errorf("worker %s does not wait for the join token", suffix)
		}
		// The token reaches the worker on stdin, never in the command line.
		if strings.Contains(create, "SWMTKN") {
			t.Errorf("worker %s: the token is in the command line", suffix)
		}
	}
	if !dependsOn(tok, urnOf(mgr)) {
		t.Error("the join token does not wait for the manager")
	}
	labels := str(prop(m.named(t, "notes-dev-swarm-labels"), "create"))
	for _, want := range []string{"self=edge", "node-10.0.0.12-22=db", "node-10.0.0.13-2222=edge"} {
		if !strings.Contains(labels, want) {
			t.Errorf("labels command %q lacks %q", labels, want)
		}
	}
	if strings.Contains(labels, "self=db") {
		t.Errorf("labels command %q labels the manager db, though a worker is", labels)
	}

	// The db node is a worker: the volumes of Postgres are created on its daemon.
	dbProv := m.named(t, "notes-dev-swarm-docker-db")
	if got := str(prop(dbProv, "host")); got != "ssh://deploy@10.0.0.12" {
		t.Errorf("db node provider host = %q", got)
	}
	if !dependsOn(dbProv, urnOf(m.named(t, "notes-dev-swarm-worker-10.0.0.12-22"))) {
		t.Error("the db node's provider does not wait for its join")
	}
	if p := m.named(t, "notes-dev-net-pgdata").Provider; !strings.Contains(p, "notes-dev-swarm-docker-db") {
		t.Errorf("pgdata volume provider = %q, want the db node's", p)
	}
	if p := m.named(t, "notes-dev-net-network").Provider; strings.Contains(p, "docker-db") {
		t.Errorf("the overlay network is created on the db node (%q), want the manager", p)
	}

	app := m.named(t, "notes-dev-app")
	spec := prop(app, "taskSpec").ObjectValue()
	placement := spec["placement"].ObjectValue()
	if got := strs(placement["prefs"]); !slices.Equal(got, []string{"spread=node.id"}) {
		t.Errorf("app placement prefs = %v, want spread=node.id", got)
	}
	if got := num(placement["maxReplicas"]); got != 2 {
		t.Errorf("app maxReplicas = %d, want 2", got)
	}
	if img := str(spec["containerSpec"].ObjectValue()["image"]); !strings.Contains(img, "@sha256:") {
		t.Errorf("app image = %q, want a reference by digest", img)
	}
	ng := m.named(t, "notes-dev-nginx")
	if got := num(prop(ng, "mode").ObjectValue()["replicated"].ObjectValue()["replicas"]); got != 2 {
		t.Errorf("nginx replicas = %d, want 2 (one per edge node: the manager and one worker)", got)
	}
	// Every service waits for the nodes.
	for _, svc := range m.byType(serviceT) {
		if !dependsOn(svc, urnOf(m.named(t, "notes-dev-swarm-labels"))) {
			t.Errorf("service %s does not wait for the node labels", svc.Name)
		}
	}
}

// Without pushRegistry the stack runs its own registry on the manager, with TLS from its own
// CA, which every node is made to trust before the app's tasks pull from it.
func TestSwarmClusterOwnRegistry(t *testing.T) {
	m := mustDeploy(t, "dev", clusterConfig(t, map[string]string{"notes:pushRegistry": ""}))
	reg := m.named(t, "notes-dev-registry")
	spec := unsecret(prop(reg, "taskSpec")).ObjectValue()
	if got := strs(spec["placement"].ObjectValue()["constraints"]); !slices.Equal(got, []string{"node.role==manager"}) {
		t.Errorf("registry constraints = %v, want the manager", got)
	}
	ports := prop(reg, "endpointSpec").ObjectValue()["ports"].ArrayValue()
	if len(ports) != 1 || num(ports[0].ObjectValue()["publishedPort"]) != 5443 || str(ports[0].ObjectValue()["publishMode"]) != "host" {
		t.Errorf("registry ports = %v, want 5443 in host mode", ports)
	}
	env := spec["containerSpec"].ObjectValue()["env"].ObjectValue()
	if str(env["REGISTRY_HTTP_TLS_CERTIFICATE"]) == "" || str(env["REGISTRY_HTTP_TLS_KEY"]) == "" {
		t.Errorf("registry env = %v, want TLS certificate and key", env)
	}
	img := m.named(t, "notes-dev-app-image")
	if c := str(prop(img, "create")); !strings.Contains(c, "10.0.0.11:5443/notes-service:") {
		t.Errorf("build command does not tag into the stack's registry: %s", c[strings.LastIndex(c, "sh -c"):])
	}
	if !dependsOn(img, urnOf(reg)) || !dependsOn(img, urnOf(m.named(t, "notes-dev-registry-trust-manager"))) {
		t.Error("the build (and its push) does not wait for the registry and the manager's trust")
	}
	app := m.named(t, "notes-dev-app")
	for _, node := range []string{"manager", "10.0.0.12-22", "10.0.0.13-2222"} {
		tr := m.named(t, "notes-dev-registry-trust-"+node)
		if c := str(prop(tr, "create")); !strings.Contains(c, "add") || !strings.Contains(c, "10.0.0.11:5443") {
			t.Errorf("trust of %s: create %q", node, c)
		}
		if !strings.Contains(str(prop(tr, "delete")), "remove") {
			t.Errorf("trust of %s does not remove itself", node)
		}
		if !strings.Contains(str(prop(tr, "stdin")), "BEGIN CERTIFICATE") {
			t.Errorf("trust of %s does not get the CA on stdin", node)
		}
		if !dependsOn(app, urnOf(tr)) {
			t.Errorf("the app service does not wait for the trust of %s", node)
		}
	}
	if i := str(spec["containerSpec"].ObjectValue()["image"]); i != "registry:2" {
		t.Errorf("registry image = %q", i)
	}
}

// With registryInsecure the registry speaks plain HTTP and no node is touched.
func TestSwarmClusterOwnRegistryInsecure(t *testing.T) {
	m := mustDeploy(t, "dev", clusterConfig(t, map[string]string{"notes:pushRegistry": "", "notes:registryInsecure": "true"}))
	env := unsecret(prop(m.named(t, "notes-dev-registry"), "taskSpec")).ObjectValue()["containerSpec"].ObjectValue()["env"]
	if !env.IsNull() && len(env.ObjectValue()) != 0 {
		t.Errorf("insecure registry env = %v, want no TLS", env)
	}
	for _, r := range m.resources {
		if strings.Contains(r.Name, "registry-trust") || strings.Contains(r.Name, "registry-keys") {
			t.Errorf("insecure registry declares %s", r.Name)
		}
	}
}

// By default the manager carries the labels no worker has.
func TestSwarmClusterDefaultManagerLabels(t *testing.T) {
	m := mustDeploy(t, "dev", clusterConfig(t, map[string]string{"notes:workers": `[{"host": "ssh://deploy@10.0.0.12", "labels": ["edge"]}, {"host": "ssh://deploy@10.0.0.13"}]`}))
	labels := str(prop(m.named(t, "notes-dev-swarm-labels"), "create"))
	for _, want := range []string{"self=db ", "node-10.0.0.12-22=edge", "node-10.0.0.13-22="} {
		if !strings.Contains(labels, want) {
			t.Errorf("labels command lacks %q: %s", want, labels[strings.LastIndex(labels, " sh apply"):])
		}
	}
}

// A one-host stack declares nothing of the cluster and keeps its spec: no placement
// preferences, one nginx task, the image by tag.
func TestSwarmOneHostHasNoClusterResources(t *testing.T) {
	m := mustDeploy(t, "dev", swarmConfig(t, nil))
	for _, r := range m.resources {
		if strings.Contains(r.Name, "swarm-worker") || strings.Contains(r.Name, "join-token") || strings.HasSuffix(r.Name, "swarm-labels") || strings.HasSuffix(r.Name, "-digest") || strings.Contains(r.Name, "registry") {
			t.Errorf("one-host stack declares %s", r.Name)
		}
	}
	app := m.named(t, "notes-dev-app")
	spec := prop(app, "taskSpec").ObjectValue()
	if p, ok := spec["placement"]; ok && !p.IsNull() {
		t.Errorf("one-host app placement = %v, want none", p)
	}
}

func TestInvalidClusterConfig(t *testing.T) {
	cases := []struct {
		name string
		set  map[string]string
		key  string
	}{
		{"worker not ssh", map[string]string{"notes:workers": `[{"host": "tcp://10.0.0.12:2375"}]`}, "notes:workers[0].host"},
		{"worker bad url", map[string]string{"notes:workers": `[{"host": "ssh://-oProxy@h"}]`}, "notes:workers[0].host"},
		{"worker twice", map[string]string{"notes:workers": `[{"host": "ssh://a@h"}, {"host": "ssh://b@h:22", "labels": ["db"]}]`}, "notes:workers[1].host"},
		{"unknown label", map[string]string{"notes:workers": `[{"host": "ssh://a@h", "labels": ["gpu"]}]`}, "notes:workers[0].labels"},
		{"workers not a list", map[string]string{"notes:workers": `ssh://a@h`}, "notes:workers"},
		{"two db nodes", map[string]string{"notes:managerLabels": `["db", "edge"]`}, "notes:workers"},
		{"no edge node", map[string]string{"notes:managerLabels": `[]`, "notes:workers": `[{"host": "ssh://a@h", "labels": ["db"]}]`}, "notes:workers"},
		{"own registry on nginx's port", map[string]string{"notes:pushRegistry": "", "notes:httpPort": "8081", "notes:registryPort": "8081"}, "notes:registryPort"},
		{"own registry port out of range", map[string]string{"notes:pushRegistry": "", "notes:registryPort": "70000"}, "notes:registryPort"},
		{"local manager", map[string]string{"notes:dockerHost": "unix:///var/run/docker.sock"}, "notes:dockerHost"},
		{"containers engine", map[string]string{"notes:engine": "containers", "notes:bindAddress": "127.0.0.1"}, "notes:workers"},
		{"negative max per node", map[string]string{"notes:maxReplicasPerNode": "-1"}, "notes:maxReplicasPerNode"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := &mocks{}
			err := deploy(t, "dev", clusterConfig(t, tc.set), m)
			if err == nil {
				t.Fatalf("deploy succeeded, want an error naming %s", tc.key)
			}
			if !strings.Contains(err.Error(), tc.key+":") {
				t.Errorf("error %q does not name %s", err, tc.key)
			}
			if len(m.resources) != 0 {
				t.Errorf("%d resources registered before the config error", len(m.resources))
			}
		})
	}
}
