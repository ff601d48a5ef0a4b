package main

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/notes-stack/notes/nginx"
)

// The new nginx configuration is checked before anything of the stack changes: the migration
// (and so the new replicas), the nginx container (a new image) and the installation into it wait
// for the check, which runs the same script on the same files in a throw-away container of the
// nginx image.
func TestNginxConfigCheckedFirst(t *testing.T) {
	for _, stack := range []string{"dev", "prod"} {
		t.Run(stack, func(t *testing.T) {
			m := mustDeploy(t, stack, stackConfig(t, stack))
			name := func(role string) string { return "notes-" + stack + "-" + role }
			check := m.named(t, name("nginx-config-check"))
			create := str(prop(check, "create"))
			for _, want := range []string{"docker run --rm -i --network none --tmpfs /tmp", "nginx:1.27", " check"} {
				if !strings.Contains(create, want) {
					t.Errorf("config check command lacks %q: %.300s", want, create)
				}
			}
			install := m.named(t, name("nginx-config"))
			if got, want := str(prop(check, "stdin")), str(prop(install, "stdin")); got != want {
				t.Error("the check does not get the files the installation gets")
			}
			for _, r := range []string{"app-migrate", "nginx-config", "nginx-container"} {
				if !dependsOn(m.named(t, name(r)), urnOf(check)) {
					t.Errorf("%s does not wait for the nginx configuration check", name(r))
				}
			}
			for _, r := range replicas(m, stack) {
				if !dependsOnTransitively(m, r, check) {
					t.Errorf("replica %s does not wait for the nginx configuration check", r.Name)
				}
			}
		})
	}
}

// nginx-install.sh in check mode against the real nginx image: an accepted configuration exits 0
// and says so; a certificate with the key of another one (what tls=provided cannot see before
// nginx loads them: both are secrets) exits 1 with nginx's reason.
func TestNginxInstallCheck(t *testing.T) {
	if exec.Command("docker", "info").Run() != nil {
		t.Skip("no Docker daemon answers (make setup starts one)")
	}
	if out, _ := exec.Command("docker", "images", "-q", "--filter", "reference="+defaultNginxImage).Output(); len(out) == 0 {
		t.Skipf("no %s image (make setup builds the stand-ins)", defaultNginxImage)
	}
	const domain = "notes.test"
	cert, key, err := nginx.SelfSignedCertificate([]string{domain}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	_, otherKey, err := nginx.SelfSignedCertificate([]string{domain}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	files, err := renderNginx(&ProxyArgs{TLS: nginx.TLSProvided, Domain: domain, HTTPPort: 80, HTTPSPort: 443,
		UpstreamDNS: "notes-test-app", DrainDelay: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		key  []byte
		ok   bool
		say  string
	}{
		{"matching key", key, true, "accepts the new configuration"},
		{"key of another certificate", otherKey, false, "rejects the new configuration"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			withTLS := map[string][]byte{"tls/fullchain.pem": cert, "tls/privkey.pem": tc.key}
			for k, v := range files {
				withTLS[k] = v
			}
			stdin, err := tarGzBase64(withTLS, map[string]int64{"tls/privkey.pem": 0o600})
			if err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command("docker", nginxCheckArgs(defaultNginxImage, string(nginx.TLSProvided), domain)...)
			cmd.Stdin = strings.NewReader(stdin)
			out, err := cmd.CombinedOutput()
			if (err == nil) != tc.ok || !strings.Contains(string(out), tc.say) {
				t.Errorf("check: %v (ok %v, want %v)\n%s\nwant it to say %q", err, err == nil, tc.ok, out, tc.say)
			}
			if !tc.ok && !strings.Contains(string(out), "key values mismatch") {
				t.Errorf("the rejection does not pass nginx's reason on:\n%s", out)
			}
		})
	}
}
