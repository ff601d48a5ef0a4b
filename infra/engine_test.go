package main

import (
	"strings"
	"testing"
)

func TestEngineConfig(t *testing.T) {
	cases := []struct {
		name string
		set  map[string]string
		keys []string // every key the error must name; none: valid
	}{
		{"default is containers", nil, nil},
		{"containers", map[string]string{"notes:engine": "containers"}, nil},
		{"swarm", map[string]string{"notes:engine": "swarm", "notes:bindAddress": "0.0.0.0", "notes:dbPort": "0"}, nil},
		{"unknown engine", map[string]string{"notes:engine": "kubernetes"}, []string{"notes:engine"}},
		{"swarm on a loopback address with a db port", map[string]string{"notes:engine": "swarm"}, []string{"notes:bindAddress", "notes:dbPort"}},
		{"swarm with acme", map[string]string{"notes:engine": "swarm", "notes:bindAddress": "0.0.0.0", "notes:dbPort": "0",
			"notes:tls": "acme", "notes:domain": "a.example.com", "notes:acmeEmail": "a@example.com", "notes:httpPort": "80"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := stackConfig(t, "dev")
			for k, v := range tc.set {
				cfg[k] = v
			}
			m := &mocks{}
			err := deploy(t, "dev", cfg, m)
			if len(tc.keys) == 0 {
				if err != nil {
					t.Fatalf("deploy: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("deploy succeeded, want an error naming %v", tc.keys)
			}
			for _, k := range tc.keys {
				if !strings.Contains(err.Error(), k) {
					t.Errorf("error %q does not name %s", err, k)
				}
			}
			if len(m.resources) != 0 {
				t.Errorf("%d resources registered before the config error", len(m.resources))
			}
		})
	}
}

// The engine guard records the engine; everything that reaches the host waits for it, and its
// update (a changed engine) fails with the way to switch.
func TestEngineGuard(t *testing.T) {
	for _, engine := range []string{"containers", "swarm"} {
		t.Run(engine, func(t *testing.T) {
			cfg := stackConfig(t, "dev")
			cfg["notes:engine"] = engine
			cfg["notes:bindAddress"] = "0.0.0.0"
			delete(cfg, "notes:dbPort")
			m := mustDeploy(t, "dev", cfg)
			g := m.named(t, "notes-dev-engine")
			if got := str(prop(g, "create")); got != "echo "+engine {
				t.Errorf("guard create = %q, want echo %s", got, engine)
			}
			update := str(prop(g, "update"))
			for _, want := range []string{"PULUMI_COMMAND_STDOUT", "pulumi destroy", "exit 1", "notes:engine"} {
				if !strings.Contains(update, want) {
					t.Errorf("guard update lacks %q: %s", want, update)
				}
			}
			if !dependsOn(m.named(t, "notes-dev-host-docker"), urnOf(g)) {
				t.Error("the docker provider does not wait for the engine guard")
			}
			for _, r := range m.byType(commandT) {
				if r != g && !dependsOnTransitively(m, r, g) {
					t.Errorf("command %s does not wait for the engine guard", r.Name)
				}
			}
		})
	}
}

// dependsOnTransitively reports whether r depends on target through any chain of dependencies
// or through its provider (which waits for its own dependencies before anything uses it).
func dependsOnTransitively(m *mocks, r, target *mockRes) bool {
	seen := map[string]bool{}
	var walk func(*mockRes) bool
	walk = func(x *mockRes) bool {
		if seen[x.Name] {
			return false
		}
		seen[x.Name] = true
		if dependsOn(x, urnOf(target)) {
			return true
		}
		for _, y := range m.resources {
			viaProvider := x.Provider != "" && strings.Contains(x.Provider, "::"+y.Name+"::")
			if (viaProvider || dependsOn(x, urnOf(y))) && walk(y) {
				return true
			}
		}
		return false
	}
	return walk(r)
}
