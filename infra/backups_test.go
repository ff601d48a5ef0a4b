package main

import (
	"strings"
	"testing"
)

// backupEnv returns the backup container's env as NAME -> entry, failing on duplicates.
func backupEnv(t *testing.T, m *mocks, stack string) (*mockRes, map[string]string) {
	t.Helper()
	b := m.named(t, "notes-"+stack+"-backup-container")
	env := map[string]string{}
	for _, e := range strs(prop(b, "envs")) {
		k, v, _ := strings.Cut(e, "=")
		if _, dup := env[k]; dup {
			t.Errorf("backup env %s set twice", k)
		}
		env[k] = v
	}
	return b, env
}

// checkBackupSecrets: no password in the command line of the backup container (ps on the host
// shows it) nor in its environment (docker inspect shows it): it travels only in a secret .pgpass
// upload, mode 0400, named by PGPASSFILE.
func checkBackupSecrets(t *testing.T, b *mockRes, password string) {
	t.Helper()
	for _, k := range []string{"entrypoints", "commands", "command", "entrypoint", "labels"} {
		v := prop(b, k)
		if containsAnywhere(v, password) {
			t.Errorf("backup container %s carries the password", k)
		}
		for _, s := range strs(v) {
			if strings.Contains(s, "://") || strings.Contains(s, "--dbname") {
				t.Errorf("backup container %s = %q carries a connection string", k, s)
			}
		}
	}
	envs := prop(b, "envs")
	if !envs.IsArray() {
		t.Fatalf("backup envs = %v, want an array of (per-entry) values", envs)
	}
	found := false
	for _, e := range envs.ArrayValue() {
		s := str(e)
		switch {
		case strings.Contains(s, password):
			t.Errorf("backup env %s holds the password", s[:strings.Index(s, "=")])
		case strings.HasPrefix(s, "PGPASSWORD="), strings.HasPrefix(s, "DATABASE_URL="):
			t.Errorf("backup env still has %s", s[:strings.Index(s, "=")])
		case s == "PGPASSFILE="+backupPassFile:
			found = true
		}
	}
	if !found {
		t.Error("backup env has no PGPASSFILE=" + backupPassFile)
	}
	checkSecretUpload(t, b, backupPassFile, password, "0400")
	// The script must not put a connection string on the command line of pg_dump/pg_restore.
	script := strings.ReplaceAll(backupScript, "\\\n", " ")
	for _, line := range strings.Split(script, "\n") {
		l := strings.TrimSpace(line)
		if strings.HasPrefix(l, "#") {
			continue
		}
		if strings.Contains(l, "DATABASE_URL") || strings.Contains(l, "PGPASSWORD") {
			t.Errorf("backup script references a secret in %q", l)
		}
		if (strings.Contains(l, "pg_dump ") || strings.Contains(l, "pg_restore ")) && strings.Contains(l, "--dbname") &&
			!strings.Contains(l, `--dbname="$PGDATABASE"`) && !strings.Contains(l, `--dbname="$scratch"`) { // database names only ($scratch: an identifier the script checks)
			t.Errorf("backup script passes a connection string in argv: %q", l)
		}
	}
}

func TestBackupContainerDatabase(t *testing.T) {
	m := mustDeploy(t, "dev", stackConfig(t, "dev"))
	b, env := backupEnv(t, m, "dev")
	want := map[string]string{
		"PGHOST": "notes-dev-db", "PGPORT": "5432", "PGUSER": "notes", "PGDATABASE": "notes",
		"PGSSLMODE": "disable", "BACKUP_DIR": "/backups",
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("backup env %s = %q, want %q", k, env[k], v)
		}
	}
	checkBackupSecrets(t, b, testDBPassword)
	// Only the password is secret: the rest stays readable in previews.
	for _, e := range prop(b, "envs").ArrayValue() {
		if s := str(e); isSecret(e) {
			t.Errorf("backup env %s is secret, want none (the password is a file)", s[:strings.Index(s, "=")])
		}
	}
}

func TestBackupContainerExternalDatabase(t *testing.T) {
	cfg := stackConfig(t, "dev")
	delete(cfg, "notes:dbPassword")
	delete(cfg, "notes:dbPort")
	cfg["notes:backups"] = "true"
	cfg["notes:databaseUrl"] = "postgres://owner:" + strings.ReplaceAll(testDBPassword, "!", "%21") +
		"@db.example.com:6543/notes_db?sslmode=verify-full&connect_timeout=10"
	m := mustDeploy(t, "ext", cfg)
	b, env := backupEnv(t, m, "ext")
	want := map[string]string{
		"PGHOST": "db.example.com", "PGPORT": "6543", "PGUSER": "owner", "PGDATABASE": "notes_db",
		"PGSSLMODE": "verify-full", "PGCONNECT_TIMEOUT": "10", "PGAPPNAME": "notes-backup",
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("backup env %s = %q, want %q", k, env[k], v)
		}
	}
	checkBackupSecrets(t, b, testDBPassword)
}

func TestPGEnv(t *testing.T) {
	env, err := pgEnv("postgresql://u%40x:p%2Fw@[::1]/d")
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"PGHOST": "::1", "PGPORT": "5432", "PGUSER": "u@x", "PGPASSWORD": "p/w", "PGDATABASE": "d", "PGSSLMODE": "prefer", "PGCONNECT_TIMEOUT": "0"} {
		if env[k] != v {
			t.Errorf("%s = %q, want %q", k, env[k], v)
		}
	}
	for _, bad := range []string{
		"mysql://u:secretpw@h/d",
		"postgres://u:secretpw@h/",
		"postgres://:secretpw@h/d",
		"postgres://u:secretpw@h/d?sslrootcert=/x",
		"postgres://u:secretpw@h/d?options=%0A",
		"not a url secretpw",
	} {
		_, err := pgEnv(bad)
		if err == nil {
			t.Errorf("pgEnv(%q) = nil error", bad)
		} else if strings.Contains(err.Error(), "secretpw") {
			t.Errorf("pgEnv error echoes the password: %v", err)
		}
	}
}
