//go:build e2e

package e2e

import (
	"net/http"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// nginxConfigRejected deploys a stack with tls=provided, then an up that changes the app (a new
// revision: migration and new replicas) together with a key that belongs to another certificate,
// an operator's mistake the program cannot see (both are secrets) and nginx refuses ("key values
// mismatch"). The up must fail on the configuration check before anything changes: no container
// of the stack created, the running nginx and replicas as they were, answering under load. With
// the right key again the next up deploys the new revision.
func nginxConfigRejected(t *testing.T) faultRow {
	const domain = "notes.test"
	cert, other := newTestCert(t, domain), newTestCert(t, domain)
	s, _ := devStack(t, "fn")
	s.set("notes:backups", "false")
	s.set("notes:rateLimit", "6000000")
	s.set("notes:tls", "provided")
	s.set("notes:domain", domain)
	s.set("notes:httpsPort", strconv.Itoa(freePort(t)))
	s.setSecret("notes:tlsCert", cert.CertPEM)
	s.setSecret("notes:tlsKey", cert.KeyPEM)
	timed(t, "nginx fault: up", func() { s.up() })
	before, rev := s.stringsOutput("replicaNames"), s.output("revision")

	s.set("notes:logLevel", "warn")
	s.setSecret("notes:tlsKey", other.KeyPEM)
	var out string
	var upErr error
	var created func() []string
	row := faultUnderLoad(t, faultTarget{engine: "containers", s: s, client: cert.Client}, 4,
		"nginx configuration rejected (tlsKey of another certificate), with an app change", func() time.Time {
			created = watchCreated(t, s)
			timed(t, "the up with the rejected configuration", func() {
				out, upErr = s.try(20*time.Minute, "", "up", "--yes", "--skip-preview", "--suppress-progress")
			})
			return time.Now()
		})
	if upErr == nil {
		t.Fatalf("pulumi up with a TLS key of another certificate succeeded:\n%s", tail(out, 30))
	}
	if !strings.Contains(out, "rejects the new configuration") || !strings.Contains(out, "key values mismatch") {
		t.Errorf("the failed up does not say that nginx rejects the configuration, and why:\n%s", tail(out, 40))
	}
	if names := created(); len(names) > 0 {
		t.Errorf("the up with the rejected configuration created containers %v: the check must come before any change", names)
	}
	for kind, n := range row.failed {
		t.Errorf("%d requests failed (%s) while the deploy with the rejected configuration ran", n, kind)
	}
	resp := expectStatus(t, cert.Client, s.output("healthUrl"), http.StatusOK)
	if got := resp.Header.Get("X-Notes-Revision"); got != rev {
		t.Errorf("X-Notes-Revision = %q after the failed up, want the old %q", got, rev)
	}
	out = docker(t, "ps", "--format", "{{.Names}}", "--filter", "label=com.notes-stack.stack="+s.name, "--filter", "label=com.notes-stack.role=app")
	got := strings.Fields(out)
	slices.Sort(got)
	slices.Sort(before)
	if !slices.Equal(got, before) {
		t.Errorf("replicas %v after the failed up, want %v", got, before)
	}

	s.setSecret("notes:tlsKey", cert.KeyPEM)
	created = watchCreated(t, s)
	timed(t, "nginx fault: up with the right key", func() { s.up() })
	if len(created()) == 0 {
		t.Error("docker events shows no container created by the up with the right key (the migration, the new replica): the check above would see none either")
	}
	resp = expectStatus(t, cert.Client, s.output("healthUrl"), http.StatusOK)
	if got := resp.Header.Get("X-Notes-Revision"); got == rev || got != s.output("revision") {
		t.Errorf("X-Notes-Revision = %q after the up with the right key, want the new %q (old %q)", got, s.output("revision"), rev)
	}
	timed(t, "nginx fault: destroy", func() { s.destroy() })
	return row
}

// watchCreated streams the stack's container create events from now on, until the returned
// function stops it and names the containers created. A stream, not `docker events --since`
// afterwards: the daemon keeps only its last 256 events for --since, and with other stacks'
// healthchecks on the same daemon (parallel tests) a deploy's creates fell out of it.
func watchCreated(t *testing.T, s *stack) (stop func() []string) {
	t.Helper()
	cmd := exec.Command("docker", "events", "--since", strconv.FormatInt(time.Now().Unix(), 10),
		"--filter", "type=container", "--filter", "event=create", "--filter", "label=com.notes-stack.stack="+s.name,
		"--format", "{{.Actor.Attributes.name}}")
	var out strings.Builder
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("docker events: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return func() []string {
		time.Sleep(time.Second) // the last events on their way
		cmd.Process.Kill()
		cmd.Wait()
		return strings.Fields(out.String())
	}
}
