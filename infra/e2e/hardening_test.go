//go:build e2e

package e2e

import (
	"encoding/json"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
)

// liveHardening is what a running container of a role is started with (docs/infra.md,
// Hardening); pids is engine containers' only (the provider cannot set it on a service).
type liveHardening struct {
	user     string
	readOnly bool
	memoryMB int64
	pids     int64
	sysctls  map[string]string
	// networks by the suffix of their name after notes-<stack>- (net is the edge network).
	networks []string
}

func liveHardeningWant(swarm bool) map[string]liveHardening {
	ports := map[string]string{"net.ipv4.ip_unprivileged_port_start": "0"}
	w := map[string]liveHardening{
		"app":     {user: "65532:65532", readOnly: swarm, memoryMB: 256, networks: []string{"net-app", "net-data"}},
		"nginx":   {user: "101:101", readOnly: true, memoryMB: 256, pids: 256, sysctls: ports, networks: []string{"net", "net-app"}},
		"certbot": {user: "0:101", readOnly: true, memoryMB: 256, pids: 64, networks: []string{"net"}},
		"db":      {memoryMB: 1024, pids: 164, networks: []string{"net-data"}},
		"backup":  {memoryMB: 512, networks: []string{"net-data"}},
	}
	if swarm {
		for role, h := range w {
			h.pids = 0
			w[role] = h
		}
	}
	return w
}

// checkStackHardened inspects every running container of stack (on engine swarm, the services'
// tasks) for its user, capabilities, root filesystem, limits and networks, and what its first
// process really runs with: no effective capability in any of them (Postgres's entrypoint
// drops to its own user before it starts the server). It returns the roles it saw.
func checkStackHardened(t *testing.T, stack string, swarm bool) map[string]bool {
	t.Helper()
	names := strings.Fields(docker(t, "ps", "--filter", "label=com.notes-stack.stack="+stack, "--format", "{{.Names}}"))
	if len(names) == 0 {
		t.Fatalf("no running container of stack %s", stack)
	}
	var info []struct {
		Name   string
		Config struct {
			User   string
			Labels map[string]string
		}
		HostConfig struct {
			CapAdd, CapDrop, SecurityOpt []string
			Privileged, ReadonlyRootfs   bool
			Memory, MemorySwap           int64
			PidsLimit                    *int64
			Sysctls                      map[string]string
		}
		NetworkSettings struct{ Networks map[string]any }
	}
	if err := json.Unmarshal([]byte(docker(t, append([]string{"inspect"}, names...)...)), &info); err != nil {
		t.Fatalf("docker inspect: %v", err)
	}
	want := liveHardeningWant(swarm)
	seen := map[string]bool{}
	for _, c := range info {
		name := strings.TrimPrefix(c.Name, "/")
		role := c.Config.Labels["com.notes-stack.role"]
		w, ok := want[role]
		if !ok {
			t.Errorf("%s: role %q has no hardening in the table", name, role)
			continue
		}
		seen[role] = true
		h := c.HostConfig
		if c.Config.User != w.user {
			t.Errorf("%s: user %q, want %q", name, c.Config.User, w.user)
		}
		if role != "db" && !slices.Equal(h.CapDrop, []string{"ALL"}) {
			t.Errorf("%s: CapDrop %v, want ALL", name, h.CapDrop)
		}
		if len(h.CapAdd) > 0 || h.Privileged {
			t.Errorf("%s: CapAdd %v privileged %v", name, h.CapAdd, h.Privileged)
		}
		// Swarm tasks take no security options from a service spec.
		if !swarm && !slices.Contains(h.SecurityOpt, "no-new-privileges") {
			t.Errorf("%s: SecurityOpt %v, want no-new-privileges", name, h.SecurityOpt)
		}
		if h.ReadonlyRootfs != w.readOnly {
			t.Errorf("%s: read-only root %v, want %v", name, h.ReadonlyRootfs, w.readOnly)
		}
		if h.Memory != w.memoryMB<<20 {
			t.Errorf("%s: memory limit %d, want %d MiB", name, h.Memory, w.memoryMB)
		}
		var pids int64
		if h.PidsLimit != nil {
			pids = *h.PidsLimit
		}
		if pids != w.pids {
			t.Errorf("%s: pids limit %d, want %d", name, pids, w.pids)
		}
		if !maps.Equal(h.Sysctls, w.sysctls) && (len(h.Sysctls) > 0 || len(w.sysctls) > 0) {
			t.Errorf("%s: sysctls %v, want %v", name, h.Sysctls, w.sysctls)
		}
		var nets []string
		for n := range c.NetworkSettings.Networks {
			nets = append(nets, strings.TrimPrefix(n, "notes-"+stack+"-"))
		}
		slices.Sort(nets)
		if !slices.Equal(nets, w.networks) {
			t.Errorf("%s: networks %v, want %v", name, nets, w.networks)
		}
		// From the host (the daemon is local): the replicas' image has no cat.
		pid := docker(t, "inspect", "-f", "{{.State.Pid}}", name)
		status, err := os.ReadFile("/proc/" + strings.TrimSpace(pid) + "/status")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, l := range strings.Split(string(status), "\n") {
			if f := strings.Fields(l); len(f) == 2 && f[0] == "CapEff:" && strings.Trim(f[1], "0") != "" {
				t.Errorf("%s: its first process has effective capabilities %s", name, f[1])
			}
			if f := strings.Fields(l); len(f) > 1 && f[0] == "Uid:" && w.user != "" && f[1] != strings.Split(w.user, ":")[0] {
				t.Errorf("%s: its first process runs as uid %s, want %s", name, f[1], w.user)
			}
		}
	}
	return seen
}
