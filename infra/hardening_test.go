package main

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
)

// hardening is what every container (engine containers) or task (engine swarm) of a role runs
// with (docs/infra.md, Hardening). The values are spelled out here, not taken from the program:
// this is the specification.
type hardening struct {
	user     string // "" = the image's own (Postgres's entrypoint drops to postgres itself)
	capDrop  bool   // every capability dropped
	readOnly bool
	tmpfs    []string
	sysctls  map[string]string
	memoryMB int
	pids     int // engine containers: set with docker update; 0 = none expected
	// networks, by the suffix of their name after notes-<stack>- (net is the edge network).
	networks []string
}

var unprivilegedPortsWant = map[string]string{"net.ipv4.ip_unprivileged_port_start": "0"}

// hardeningWant is the table for both engines; swarm has no pids limits (the provider has no
// input for them) and its app and nginx tmpfs are mounts.
func hardeningWant(swarm bool) map[string]hardening {
	w := map[string]hardening{
		"app":     {user: "65532:65532", capDrop: true, readOnly: swarm, tmpfs: []string{"/tmp"}, memoryMB: 256, networks: []string{"net-app", "net-data"}},
		"nginx":   {user: "101:101", capDrop: true, readOnly: true, tmpfs: []string{"/tmp", "/var/cache/nginx"}, sysctls: unprivilegedPortsWant, memoryMB: 256, pids: 256, networks: []string{"net", "net-app"}},
		"certbot": {user: "0:101", capDrop: true, readOnly: true, tmpfs: []string{"/tmp", "/var/lib/letsencrypt", "/var/log/letsencrypt"}, memoryMB: 256, pids: 64, networks: []string{"net"}},
		"db":      {memoryMB: 1024, pids: 164, networks: []string{"net-data"}},
		"backup":  {capDrop: true, memoryMB: 512, networks: []string{"net-data"}},
	}
	if swarm {
		for role, h := range w {
			h.pids = 0
			w[role] = h
		}
		// The db task's /dev/shm is a tmpfs mount on swarm (engine containers: ShmSize).
		db := w["db"]
		db.tmpfs = []string{"/dev/shm"}
		w["db"] = db
	}
	return w
}

// roleOf is the com.notes-stack.role label of a container or service.
func roleOf(labels resource.PropertyValue) string {
	for _, l := range unsecret(labels).ArrayValue() {
		if o := obj(l); str(o["label"]) == "com.notes-stack.role" {
			return str(o["value"])
		}
	}
	return ""
}

// wantFor is the row of want for r's role, which it marks seen; false for a role the table
// lacks (an error: every container and service must be in it).
func wantFor(t *testing.T, want map[string]hardening, seen map[string]bool, r *mockRes) (hardening, bool) {
	t.Helper()
	role := roleOf(prop(r, "labels"))
	w, ok := want[role]
	if !ok {
		t.Errorf("%s: role %q has no hardening in the table", r.Name, role)
		return w, false
	}
	seen[role] = true
	return w, true
}

func sortedKeys[V any](m map[resource.PropertyKey]V) []string {
	var k []string
	for key := range m {
		k = append(k, string(key))
	}
	sort.Strings(k)
	return k
}

func stringMap(v resource.PropertyValue) map[string]string {
	out := map[string]string{}
	for k, val := range obj(v) {
		out[string(k)] = str(val)
	}
	return out
}

// networkNames are the networks of a container's networksAdvanced or a service's
// networksAdvanceds, as the suffix after notes-<stack>- (swarm: of the network resource's id).
func networkNames(stack string, v resource.PropertyValue) []string {
	var out []string
	for _, n := range unsecret(v).ArrayValue() {
		name := strings.TrimPrefix(str(obj(n)["name"]), "notes-"+stack+"-")
		name = strings.TrimSuffix(strings.Replace(name, "net-network", "net", 1), "_id")
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// checkNetworks: the app network is internal, and the data network unless a database port is
// published (it needs a gateway).
func checkNetworks(t *testing.T, m *mocks, stack string, dataInternal bool) {
	t.Helper()
	want := map[string]bool{"notes-" + stack + "-net": false, "notes-" + stack + "-net-app": true, "notes-" + stack + "-net-data": dataInternal}
	got := map[string]bool{}
	for _, n := range m.byType("docker:index/network:Network") {
		got[str(prop(n, "name"))] = boolean(prop(n, "internal"))
	}
	if !maps.Equal(got, want) {
		t.Errorf("networks (name: internal) %v, want %v", got, want)
	}
}

// pidsLimits maps a container name to the limit a `docker update --pids-limit` command sets.
func pidsLimits(m *mocks) map[string]int {
	out := map[string]int{}
	for _, c := range m.byType(commandT) {
		// Quoted for ssh on an ssh:// host.
		f := strings.Fields(strings.NewReplacer("'", " ", `"`, " ").Replace(str(prop(c, "create"))))
		for i := 0; i+3 < len(f); i++ {
			if f[i] == "update" && f[i+1] == "--pids-limit" {
				var n int
				fmt.Sscan(f[i+2], &n)
				out[f[i+3]] = n
			}
		}
	}
	return out
}

func TestEveryContainerHardened(t *testing.T) {
	for _, stack := range []string{"dev", "prod"} {
		t.Run(stack, func(t *testing.T) {
			m := mustDeploy(t, stack, stackConfig(t, stack))
			want := hardeningWant(false)
			pids := pidsLimits(m)
			seen := map[string]bool{}
			for _, c := range m.byType(containerT) {
				w, ok := wantFor(t, want, seen, c)
				if !ok {
					continue
				}
				name := str(prop(c, "name"))
				if u := str(prop(c, "user")); u != w.user {
					t.Errorf("%s: user %q, want %q", c.Name, u, w.user)
				}
				if d := strs(obj(prop(c, "capabilities"))["drops"]); w.capDrop != slices.Equal(d, []string{"ALL"}) {
					t.Errorf("%s: capabilities drops %v, want ALL: %v", c.Name, d, w.capDrop)
				}
				if a := strs(obj(prop(c, "capabilities"))["adds"]); len(a) > 0 {
					t.Errorf("%s: adds capabilities %v", c.Name, a)
				}
				if so := strs(prop(c, "securityOpts")); !slices.Contains(so, "no-new-privileges") {
					t.Errorf("%s: securityOpts %v, want no-new-privileges", c.Name, so)
				}
				if boolean(prop(c, "privileged")) {
					t.Errorf("%s is privileged", c.Name)
				}
				if ro := boolean(prop(c, "readOnly")); ro != w.readOnly {
					t.Errorf("%s: readOnly %v, want %v", c.Name, ro, w.readOnly)
				}
				if tm := sortedKeys(obj(prop(c, "tmpfs"))); !slices.Equal(tm, w.tmpfs) {
					t.Errorf("%s: tmpfs %v, want %v", c.Name, tm, w.tmpfs)
				}
				for _, o := range obj(prop(c, "tmpfs")) {
					if !strings.Contains(str(o), "noexec") {
						t.Errorf("%s: tmpfs %q is executable", c.Name, str(o))
					}
				}
				if sc := stringMap(prop(c, "sysctls")); !maps.Equal(sc, w.sysctls) && (len(sc) > 0 || len(w.sysctls) > 0) {
					t.Errorf("%s: sysctls %v, want %v", c.Name, sc, w.sysctls)
				}
				if mem, swap := num(prop(c, "memory")), num(prop(c, "memorySwap")); mem != w.memoryMB || swap != w.memoryMB {
					t.Errorf("%s: memory %d swap %d, want %d MiB and no swap", c.Name, mem, swap, w.memoryMB)
				}
				if p := pids[name]; p != w.pids {
					t.Errorf("%s: pids limit %d, want %d", c.Name, p, w.pids)
				}
				if n := networkNames(stack, prop(c, "networksAdvanced")); !slices.Equal(n, w.networks) {
					t.Errorf("%s: networks %v, want %v", c.Name, n, w.networks)
				}
			}
			for _, role := range []string{"app", "nginx", "db", "backup"} {
				if !seen[role] {
					t.Errorf("no %s container", role)
				}
			}
			if stack == "prod" && !seen["certbot"] {
				t.Error("no certbot container in the acme stack")
			}
			// dev publishes its database port on 127.0.0.1.
			checkNetworks(t, m, stack, stack == "prod")
		})
	}
}

func TestEveryServiceHardened(t *testing.T) {
	cfg := swarmConfig(t, map[string]string{
		"notes:tls": "acme", "notes:domain": "notes.test", "notes:acmeEmail": "ops@notes.test", "notes:httpsPort": "8443",
	})
	m := mustDeploy(t, "dev", cfg)
	want := hardeningWant(true)
	seen := map[string]bool{}
	for _, s := range m.byType(serviceT) {
		w, ok := wantFor(t, want, seen, s)
		if !ok {
			continue
		}
		role := roleOf(prop(s, "labels"))
		spec := containerSpec(s)
		if u := str(spec["user"]); u != w.user {
			t.Errorf("%s: user %q, want %q", s.Name, u, w.user)
		}
		if d := strs(spec["capDrops"]); w.capDrop != slices.Equal(d, []string{"ALL"}) {
			t.Errorf("%s: capDrops %v, want ALL: %v", s.Name, d, w.capDrop)
		}
		if a := strs(spec["capAdds"]); len(a) > 0 {
			t.Errorf("%s: adds capabilities %v", s.Name, a)
		}
		if ro := boolean(spec["readOnly"]); ro != w.readOnly {
			t.Errorf("%s: readOnly %v, want %v", s.Name, ro, w.readOnly)
		}
		var tm []string
		for _, mnt := range unsecret(spec["mounts"]).ArrayValue() {
			if o := obj(mnt); str(o["type"]) == "tmpfs" {
				tm = append(tm, str(o["target"]))
			}
		}
		sort.Strings(tm)
		wantTmpfs := w.tmpfs
		if role == "nginx" {
			// cert-watch.sh writes /etc/nginx/tls at every start (tls=acme).
			wantTmpfs = append([]string{"/etc/nginx/tls"}, wantTmpfs...)
		}
		if !slices.Equal(tm, wantTmpfs) {
			t.Errorf("%s: tmpfs mounts %v, want %v", s.Name, tm, wantTmpfs)
		}
		if sc := stringMap(spec["sysctl"]); !maps.Equal(sc, w.sysctls) && (len(sc) > 0 || len(w.sysctls) > 0) {
			t.Errorf("%s: sysctl %v, want %v", s.Name, sc, w.sysctls)
		}
		if n := networkNames("dev", obj(prop(s, "taskSpec"))["networksAdvanceds"]); !slices.Equal(n, w.networks) {
			t.Errorf("%s: networks %v, want %v", s.Name, n, w.networks)
		}
		limits := obj(obj(obj(prop(s, "taskSpec"))["resources"])["limits"])
		if mem := num(limits["memoryBytes"]); mem != w.memoryMB<<20 {
			t.Errorf("%s: memory limit %d, want %d MiB", s.Name, mem, w.memoryMB)
		}
	}
	for _, role := range []string{"app", "nginx", "db", "backup", "certbot"} {
		if !seen[role] {
			t.Errorf("no %s service", role)
		}
	}
	checkNetworks(t, m, "dev", true)
}
