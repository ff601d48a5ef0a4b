//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// backupAndRestore takes a backup with the backup container's own command, deletes notes through
// the API and behind its back, restores the dump, and compares every row of the notes table.
func backupAndRestore(t *testing.T, s *stack, client *http.Client, api string) {
	t.Helper()
	backupAndRestoreIn(t, s.output("databaseContainer"), s.output("backupContainer"), client, api, s.get("notes:apiToken"))
}

// backupAndRestoreIn is backupAndRestore with the database and backup containers named (on
// engine swarm: the services' task containers); token is the stack's notes:apiToken (DELETE
// needs it).
func backupAndRestoreIn(t *testing.T, db, backup string, client *http.Client, api, token string) {
	t.Helper()
	rows := func() string {
		return docker(t, "exec", db, "psql", "-X", "-U", "notes", "-d", "notes", "-At", "-c",
			"SELECT id, title, body, created_at FROM notes ORDER BY id")
	}
	before := rows()
	if strings.Count(before, "\n") < 5 {
		t.Fatalf("expected the earlier subtests' notes in the database, have:\n%s", before)
	}

	out := docker(t, "exec", backup, "notes-backup", "now")
	file := dumpPath(out)
	if file == "" {
		t.Fatalf("notes-backup now printed %q, want the dump's path", out)
	}
	if list := docker(t, "exec", backup, "notes-backup", "list"); !strings.Contains(file, strings.Split(list, "\n")[0]) {
		t.Errorf("notes-backup list does not start with the new dump %s:\n%s", file, list)
	}

	firstID := strings.SplitN(before, "|", 2)[0]
	req, _ := http.NewRequest(http.MethodDelete, fmt.Sprintf("%s/%s", api, firstID), nil)
	if resp, err := client.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("DELETE note %s without a token: %v %v, want 401", firstID, resp, err)
	} else {
		resp.Body.Close()
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE note %s: status %d", firstID, resp.StatusCode)
	}
	docker(t, "exec", db, "psql", "-X", "-U", "notes", "-d", "notes", "-c", "DELETE FROM notes")
	if left := rows(); left != "" {
		t.Fatalf("notes left after DELETE: %s", left)
	}

	docker(t, "exec", backup, "notes-backup", "restore", file)
	if after := rows(); after != before {
		t.Fatalf("restored rows differ from the backed-up rows:\nbefore %d bytes, after %d bytes", len(before), len(after))
	}
	t.Logf("backup %s restored %d notes", file, strings.Count(before, "\n")+1)

	// The restored database is usable by the least-privilege role the replicas connect as.
	l := newLoad(api, 1)
	l.post(context.Background(), "after restore")
	if len(l.failures) > 0 {
		t.Fatalf("POST after restore: %v", l.failures)
	}
	l.verifyAcked(t)
}

// dumpPath is the dump's path in the output of `notes-backup now`: the line of stdout that names
// it. The output is stdout and stderr together, and their order varies with the machine's load.
func dumpPath(out string) string {
	for _, line := range strings.Split(out, "\n") {
		if line = strings.TrimSpace(line); strings.HasPrefix(line, "/") && strings.HasSuffix(line, ".dump") && !strings.Contains(line, " ") {
			return line
		}
	}
	return ""
}
