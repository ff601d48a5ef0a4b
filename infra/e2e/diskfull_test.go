//go:build e2e

package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// hostTmpfs mounts a tmpfs of size (mount(8)'s size=, such as 256m) on this machine, the Docker
// host of the fault suite, and unmounts it at cleanup. A stack binds a data volume to it
// (bindVolume): a filesystem of its own that fills up without filling the host's. Not a tmpfs
// volume: Docker unmounts those, losing their content, whenever their container stops.
func hostTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "notes-e2e-vol-")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0755", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount a %s tmpfs on %s (the disk-full faults need root): %v: %s", size, dir, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
			return
		}
		os.Remove(dir)
	})
	return dir
}

// bindVolume sets key (notes:dbVolumeDriverOpts, notes:backupVolumeDriverOpts) to bind the
// volume to dir on the Docker host, the documented way to put it on a device of its own.
func bindVolume(s *stack, key, dir string) {
	s.t.Helper()
	s.setPath(key+".type", "none")
	s.setPath(key+".o", "bind")
	s.setPath(key+".device", dir)
}

// fill writes a ballast file at path inside container until its filesystem is full.
func fill(t *testing.T, container, path string) {
	t.Helper()
	out, err := exec.Command("docker", "exec", container, "dd", "if=/dev/zero", "of="+path, "bs=1M").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "No space left on device") {
		t.Fatalf("filling %s in %s: %v, want ENOSPC: %s", path, container, err, out)
	}
}

// ballast is the file fill writes into the volume, by its name inside the container and on the
// host (removed from the host: the container may be down).
const ballast = "notes-e2e-ballast"

// diskFullFaults fills the database volume (dir on the host, mounted at the data directory) under
// load, twice, and frees it again:
//   - the tables cannot grow (WAL switched to a fresh segment first, so it needs no new file):
//     Postgres fails the statement (disk_full, 53100), the service answers 503 with Retry-After;
//     reads keep working;
//   - WAL needs a new segment (pg_switch_wal, what enough writes do on their own): Postgres
//     PANICs, cannot finish its crash recovery without space and exits; Docker restarts it until
//     the space is back. Every request gets 503 meanwhile (the replicas are fine).
//
// Both: no 502, no acknowledged write lost.
func diskFullFaults(t *testing.T, s *stack, dir string) []faultRow {
	ft := faultTarget{engine: "containers", s: s}
	db := s.output("databaseContainer")
	inData := "/var/lib/postgresql/data/" + ballast
	psql := func(t *testing.T, sql string) error {
		out, err := exec.Command("docker", "exec", db, "psql", "-X", "-U", "notes", "-d", "notes", "-At", "-c", sql).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s: %v: %s", sql, err, out)
		}
		return nil
	}
	free := func(t *testing.T) {
		if err := os.Remove(filepath.Join(dir, ballast)); err != nil {
			t.Fatalf("removing the ballast: %v", err)
		}
	}
	ready := func() bool {
		return exec.Command("docker", "exec", db, "pg_isready", "-q", "-U", "notes", "-d", "notes").Run() == nil
	}
	api := s.output("apiUrl")
	var rows []faultRow
	t.Run("database volume full", func(t *testing.T) {
		row := faultUnderLoad(t, ft, 16, "database volume full (tables cannot grow) for 5 s", func() time.Time {
			if err := psql(t, "SELECT pg_switch_wal()"); err != nil {
				t.Fatal(err)
			}
			fill(t, db, inData)
			// The answer a client gets: a 503 problem with Retry-After (some notes still
			// fit into pages that have room; then every write needs a new one).
			waitFor(t, time.Minute, "a POST to get 503 on the full disk", func() bool {
				return checkUnavailable(t, api, "disk full")
			})
			time.Sleep(5 * time.Second)
			free(t)
			return waitFor(t, time.Minute, "a POST to succeed again", func() bool { return postStatus(t, api) == http.StatusCreated })
		})
		rows = append(rows, row)
		for kind, n := range row.failed {
			if kind != http.MethodPost+" 503" {
				t.Errorf("%d requests got %s with the database volume full: want only POST 503 (writes), reads keep working", n, kind)
			}
		}
	})
	t.Run("database volume full, WAL needs a new segment", func(t *testing.T) {
		row := faultUnderLoad(t, ft, 16, "database volume full, WAL needs a new segment, for 5 s", func() time.Time {
			fill(t, db, inData)
			if err := psql(t, "SELECT pg_switch_wal()"); err != nil {
				t.Logf("pg_switch_wal on the full disk: %v", err)
			}
			waitFor(t, time.Minute, "Postgres to stop accepting connections (its PANIC)", func() bool { return !ready() })
			time.Sleep(5 * time.Second)
			logs, _ := exec.Command("docker", "logs", "--since", "1m", db).CombinedOutput()
			for _, line := range strings.Split(string(logs), "\n") {
				if strings.Contains(line, "PANIC") || strings.Contains(line, "No space left") {
					t.Logf("postgres: %s", line)
				}
			}
			free(t)
			return waitFor(t, 3*time.Minute, "Postgres to accept connections again", ready)
		})
		rows = append(rows, row)
		for kind, n := range row.failed {
			if strings.HasSuffix(kind, " 502") || strings.HasSuffix(kind, " 504") {
				t.Errorf("%d requests got %s while Postgres was down for lack of space: nginx must pass the service's 503 on", n, kind)
			}
		}
	})
	return rows
}

// postStatus POSTs one note and returns the status (0: no answer).
func postStatus(t *testing.T, api string) int {
	t.Helper()
	resp, err := postNote(api, "probe "+randomSuffix(t))
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func postNote(api, title string) (*http.Response, error) {
	req, _ := http.NewRequest(http.MethodPost, api, bytes.NewReader([]byte(`{"title":"`+title+`","body":"probe"}`)))
	req.Header.Set("Content-Type", "application/json")
	return (&http.Client{Timeout: 10 * time.Second}).Do(req)
}

// checkUnavailable POSTs one note: false when it was stored, true for a 503 problem with
// Retry-After; anything else fails t.
func checkUnavailable(t *testing.T, api, during string) bool {
	t.Helper()
	resp, err := postNote(api, "probe "+randomSuffix(t))
	if err != nil {
		t.Fatalf("POST during %s: %v", during, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusCreated:
		return false
	case resp.StatusCode != http.StatusServiceUnavailable:
		t.Fatalf("POST during %s: status %d, want 201 or 503: %s", during, resp.StatusCode, body)
	case resp.Header.Get("Content-Type") != "application/problem+json" || resp.Header.Get("Retry-After") == "":
		t.Fatalf("POST during %s: 503 with Content-Type %q and Retry-After %q, want a problem with Retry-After: %s",
			during, resp.Header.Get("Content-Type"), resp.Header.Get("Retry-After"), body)
	}
	t.Logf("POST during %s: 503 %s, Retry-After %s", during, body, resp.Header.Get("Retry-After"))
	return true
}

// backupFullFault fills the backup volume (dir on the host, /backups in the backup container)
// under load: a backup now fails loudly (exit status and message, the healthcheck unhealthy at
// once), the older dumps stay as they were, the database and the service are not affected (no
// failed request); once the space is back, a backup succeeds and the healthcheck is healthy.
func backupFullFault(t *testing.T, s *stack, dir string) faultRow {
	backup := s.output("backupContainer")
	files := func() string {
		t.Helper()
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		for _, e := range entries {
			if e.Name() == ballast {
				continue
			}
			info, err := e.Info()
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&b, "%s %d %s\n", e.Name(), info.Size(), info.ModTime().Format(time.RFC3339Nano))
		}
		return b.String()
	}
	run := func(args ...string) (string, error) {
		out, err := exec.Command("docker", append([]string{"exec", backup, "notes-backup"}, args...)...).CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	var row faultRow
	t.Run("backup volume full", func(t *testing.T) {
		// A good dump to keep (the loop's first one may still be running: wait for it).
		waitFor(t, 2*time.Minute, "a good dump", func() bool { out, err := run("health"); return err == nil && strings.Contains(out, "last good dump") })
		row = faultUnderLoad(t, faultTarget{engine: "containers", s: s}, 16, "backup volume full", func() time.Time {
			before := files()
			fill(t, backup, "/backups/"+ballast)
			out, err := run("now")
			if err == nil || !strings.Contains(out, "not enough space") {
				t.Errorf("notes-backup now on a full backup volume: %v, want a failure that says not enough space:\n%s", err, out)
			}
			t.Logf("notes-backup now on the full volume: %v: %s", err, out)
			if out, err := run("health"); err == nil || !strings.Contains(out, "not enough space") {
				t.Errorf("notes-backup health on a full backup volume: %v %q, want unhealthy, not enough space", err, out)
			}
			if after := files(); after != before {
				t.Errorf("the backup volume changed with the failed backup:\nbefore\n%safter\n%s", before, after)
			}
			if err := os.Remove(filepath.Join(dir, ballast)); err != nil {
				t.Fatal(err)
			}
			repaired := time.Now()
			if out, err := run("now"); err != nil {
				t.Errorf("notes-backup now with space again: %v\n%s", err, out)
			}
			if out, err := run("health"); err != nil {
				t.Errorf("notes-backup health after a good dump: %v %q", err, out)
			}
			return repaired
		})
		if n := len(row.failed); n > 0 {
			t.Errorf("requests failed while the backup volume was full (%v): the database and the service must not notice", row.failed)
		}
	})
	return row
}
