//go:build e2e

package e2e

import "testing"

// TestACMESwarm is TestACME on engine swarm: certbot as a service next to nginx. Its file sorts
// after every engine-containers test of the suite, which run before any swarm state change
// (docs/infra.md, section 5).
func TestACMESwarm(t *testing.T) {
	ensureSwarmManager(t)
	testACME(t, true)
}
