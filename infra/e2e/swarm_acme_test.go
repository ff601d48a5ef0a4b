//go:build e2e

package e2e

import "testing"

// TestACMESwarm is TestACME on engine swarm: certbot as a service next to nginx.
func TestACMESwarm(t *testing.T) {
	t.Parallel()
	ensureSwarmManager(t)
	testACME(t, true)
}
