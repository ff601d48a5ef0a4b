// Package e2e deploys the whole stack with the real Pulumi engine and providers to a Docker daemon on
// this machine, uses it, redeploys it under load, backs it up and restores it, and destroys it.
//
// The tests carry the build tag e2e and need root, a running dockerd, the pulumi CLI on PATH, the
// images postgres:17, nginx:1.27 and golang:1.26 (official or the team's stand-ins), sshd from
// openssh-server and jq (for scripts/ops.sh, which TestOperations drives). `make setup` prepares a
// Debian machine; `make e2e` runs the suite.
package e2e
