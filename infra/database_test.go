package main

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// A dbPassword change is applied to the running database (ALTER ROLE on secret stdin) before
// migrations run; the container itself is not recreated for it.
func TestDatabasePasswordCommand(t *testing.T) {
	m := mustDeploy(t, "dev", stackConfig(t, "dev"))
	pw := m.named(t, "notes-dev-db-password")
	if !isSecret(prop(pw, "stdin")) {
		t.Fatal("the password command's stdin is not secret")
	}
	if c := str(prop(pw, "create")); !strings.Contains(c, "exec -i notes-dev-db psql") {
		t.Errorf("password command = %q", c)
	}
	mig := m.named(t, "notes-dev-app-migrate")
	if !slices.ContainsFunc(mig.Deps, func(d string) bool { return strings.HasSuffix(d, "::notes-dev-db-password") }) {
		t.Errorf("migration does not wait for the password command: %v", mig.Deps)
	}
}

func TestAlterPasswordSQL(t *testing.T) {
	got := alterPasswordSQL(`no"tes`, `it's \ secret`)
	for _, want := range []string{
		"SET log_statement = 'none';",
		`ALTER ROLE "no""tes" PASSWORD 'it''s \ secret';`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("alterPasswordSQL = %q, lacks %q", got, want)
		}
	}
}

func TestPostgresMajor(t *testing.T) {
	for image, want := range map[string]string{
		"postgres:17": "17", "postgres:17.2": "17", "postgres:17.2-alpine": "17", "postgres:9.6": "9",
		"registry.example:5000/lib/postgres:16@sha256:abc": "16", "standin-postgres:17": "17",
		"postgres": "", "postgres:latest": "", "postgres@sha256:abc": "", "registry:5000/postgres": "",
		"postgres:alpine": "", "postgres:17alpine": "",
	} {
		got, err := postgresMajor(image)
		if got != want || (err != nil) != (want == "") {
			t.Errorf("postgresMajor(%q) = %q, %v; want %q", image, got, err, want)
		}
	}
}

// The major guard records the image's major and refuses a change, with the old major in the
// message; everything that reaches the host waits for it. Prod protects the container.
func TestDatabaseMajorGuard(t *testing.T) {
	for _, stack := range []string{"dev", "prod"} {
		cfg := stackConfig(t, stack)
		cfg["notes:postgresImage"] = "postgres:17.2-alpine"
		m := mustDeploy(t, stack, cfg)
		g := m.named(t, "notes-"+stack+"-db-major")
		if got := str(prop(g, "create")); got != "echo 17" {
			t.Errorf("%s: guard create = %q", stack, got)
		}
		for _, r := range m.byType(commandT) {
			// The placeholder key's `cat` runs on the machine running Pulumi, not on the host.
			local := strings.HasSuffix(r.Name, "-placeholder-key")
			if r != g && r.Name != "notes-"+stack+"-engine" && !local && !dependsOnTransitively(m, r, g) {
				t.Errorf("%s: command %s does not wait for the major guard", stack, r.Name)
			}
		}
		db := m.named(t, "notes-"+stack+"-db-container")
		if db.Protect != (stack == "prod") {
			t.Errorf("%s: database container protect = %v", stack, db.Protect)
		}
	}
	// The refusal, run as pulumi-command runs it on a change.
	cmd := exec.Command("sh", "-c", dbMajorRefusal)
	cmd.Env = append(os.Environ(), "PULUMI_COMMAND_STDOUT=16")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "initialised by Postgres 16") || !strings.Contains(string(out), "notes:postgresImage") {
		t.Errorf("refusal: %v %s", err, out)
	}
	// No guard without a database container.
	cfg := stackConfig(t, "dev")
	cfg["notes:databaseUrl"] = "postgres://o:p@db.example.com/notes"
	delete(cfg, "notes:dbPassword")
	delete(cfg, "notes:dbPort")
	cfg["notes:postgresImage"] = "postgres:latest" // only the backups use it
	m := mustDeploy(t, "dev", cfg)
	for _, r := range m.byType(commandT) {
		if r.Name == "notes-dev-db-major" {
			t.Error("a major guard for an external database")
		}
	}
}
