package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
)

// TestConnectionBudget: a stack whose rollout (old and new replicas at once), migration, backups
// and reserve need more connections than Postgres's max_connections is refused, naming the keys;
// one that fits (the boundary included) is accepted. The same on both engines.
func TestConnectionBudget(t *testing.T) {
	for _, engine := range []Engine{EngineContainers, EngineSwarm} {
		for _, tc := range []struct {
			name           string
			replicas, pool int
			maxConns       int
			backups        bool
			want           int // Total
			fits           bool
		}{
			{"dev defaults", 1, 4, 100, false, 2*1*4 + 2 + 2 + 3, true},
			{"prod defaults", 2, 4, 100, true, 2*2*4 + 2 + 2 + 2 + 3, true},
			{"exactly full", 3, 15, 99, true, 2*3*15 + 2 + 2 + 2 + 3, true},
			{"one short", 3, 15, 98, true, 99, false},
			{"backups count", 3, 15, 97, false, 97, true},
			{"many replicas", 20, 4, 100, true, 2*20*4 + 9, false},
			{"many replicas, raised limit", 20, 4, 169, true, 169, true},
			{"big pool", 2, 30, 100, false, 2*2*30 + 7, false},
		} {
			t.Run(string(engine)+"/"+tc.name, func(t *testing.T) {
				c := validConfig(t)
				c.Engine = engine
				c.Replicas, c.DBPoolSize, c.DBMaxConnections, c.BackupsEnabled = tc.replicas, tc.pool, tc.maxConns, tc.backups
				if got := c.Connections().Total; got != tc.want {
					t.Errorf("Connections().Total = %d, want %d (%s)", got, tc.want, c.Connections())
				}
				err := c.Validate()
				if tc.fits {
					if err != nil {
						t.Errorf("Validate: %v", err)
					}
					return
				}
				if err == nil {
					t.Fatalf("Validate accepted %d connections against max_connections %d", tc.want, tc.maxConns)
				}
				for _, key := range []string{"notes:replicas", "notes:dbPoolSize", "notes:dbMaxConnections"} {
					if !strings.Contains(err.Error(), key) {
						t.Errorf("error %q does not name %s", err, key)
					}
				}
			})
		}
	}
}

// TestConnectionSettingsReachTheProcesses: dbPoolSize is every replica's DB_MAX_CONNS and
// dbMaxConnections the database's max_connections, on both engines; a stack that does not fit
// fails before any resource is registered.
func TestConnectionSettingsReachTheProcesses(t *testing.T) {
	set := map[string]string{"notes:replicas": "2", "notes:dbPoolSize": "3", "notes:dbMaxConnections": "60"}

	t.Run("containers", func(t *testing.T) {
		cfg := stackConfig(t, "dev")
		for k, v := range set {
			cfg[k] = v
		}
		m := mustDeploy(t, "dev", cfg)
		for _, r := range replicas(m, "dev") {
			if envs := strs(prop(r, "envs")); !slices.Contains(envs, "DB_MAX_CONNS=3") {
				t.Errorf("%s: envs %v lack DB_MAX_CONNS=3", r.Name, envs)
			}
		}
		if cmd := strings.Join(strs(prop(m.named(t, "notes-dev-db-container"), "command")), " "); cmd != "postgres -c max_connections=60" {
			t.Errorf("database command = %q", cmd)
		}
	})
	t.Run("swarm", func(t *testing.T) {
		m := mustDeploy(t, "dev", swarmConfig(t, set))
		if got := str(obj(containerSpec(m.named(t, "notes-dev-app"))["env"])["DB_MAX_CONNS"]); got != "3" {
			t.Errorf("app DB_MAX_CONNS = %q", got)
		}
		if args := strings.Join(strs(containerSpec(m.named(t, "notes-dev-db"))["args"]), " "); args != "postgres -c max_connections=60" {
			t.Errorf("database args = %q", args)
		}
	})
	for _, engine := range []string{"containers", "swarm"} {
		t.Run(engine+" too many", func(t *testing.T) {
			cfg := swarmConfig(t, map[string]string{"notes:replicas": "10", "notes:dbPoolSize": "10"})
			cfg["notes:engine"] = engine
			m := &mocks{}
			err := deploy(t, "dev", cfg, m)
			if err == nil || !strings.Contains(err.Error(), "notes:dbMaxConnections") || !strings.Contains(err.Error(), "notes:dbPoolSize") {
				t.Fatalf("deploy error = %v, want one naming notes:dbMaxConnections and notes:dbPoolSize", err)
			}
			if len(m.resources) != 0 {
				t.Errorf("%d resources registered before the config error", len(m.resources))
			}
		})
	}
}

// TestDBHealthInterval: notes:dbHealthInterval sets the database's health check on both engines,
// with retries that keep about 25 s of failures before it counts as unhealthy; the default is
// what stacks had before the key (a changed check restarts a swarm database).
func TestDBHealthInterval(t *testing.T) {
	for _, engine := range []string{"containers", "swarm"} {
		for _, tt := range []struct {
			value, interval string
			retries         float64
		}{{"", "5s", 5}, {"1s", "1s", 25}, {"10s", "10s", 3}} {
			t.Run(engine+" "+tt.value, func(t *testing.T) {
				cfg := swarmConfig(t, map[string]string{"notes:engine": engine})
				if engine == "containers" {
					cfg = stackConfig(t, "dev")
				}
				if tt.value != "" {
					cfg["notes:dbHealthInterval"] = tt.value
				}
				m := mustDeploy(t, "dev", cfg)
				var hc map[resource.PropertyKey]resource.PropertyValue
				if engine == "swarm" {
					hc = obj(containerSpec(m.named(t, "notes-dev-db"))["healthcheck"])
				} else {
					hc = obj(prop(m.named(t, "notes-dev-db-container"), "healthcheck"))
				}
				if got := str(hc["interval"]); got != tt.interval {
					t.Errorf("interval = %q, want %q", got, tt.interval)
				}
				if got := unsecret(hc["retries"]); !got.IsNumber() || got.NumberValue() != tt.retries {
					t.Errorf("retries = %v, want %v", got, tt.retries)
				}
			})
		}
	}
	for _, bad := range []string{"500ms", "1.5s", "2m", "0s", "often"} {
		t.Run("refused "+bad, func(t *testing.T) {
			cfg := stackConfig(t, "dev")
			cfg["notes:dbHealthInterval"] = bad
			err := deploy(t, "dev", cfg, &mocks{})
			if err == nil || !strings.Contains(err.Error(), "notes:dbHealthInterval") {
				t.Fatalf("deploy error = %v, want one naming notes:dbHealthInterval", err)
			}
		})
	}
}
