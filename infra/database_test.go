package main

import (
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
