package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/notes-stack/notes/internal/testing/pgtest"
	"github.com/notes-stack/notes/service/internal/notes"
)

// TestDiskFull fills a real filesystem under the notes table (a tablespace on a 1 MiB tmpfs):
// the write that cannot extend the table fails as EUNAVAILABLE (disk_full, 53100: the service's
// 503 with Retry-After), reads keep working, every note written before is still there, and
// writes succeed again once the filesystem has room.
func TestDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: mounting a small tmpfs needs root")
	}
	// Not t.TempDir: its parents are closed to the server's OS user.
	parent, err := os.MkdirTemp("", "notes-diskfull-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(parent) })
	dir := filepath.Join(parent, "tablespace")
	if err := os.Chmod(parent, 0o711); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	u, err := user.Lookup(pgtest.User) // the server's OS user, who must own the tablespace
	if err != nil {
		t.Fatal(err)
	}
	mount := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("mount", args...).CombinedOutput(); err != nil {
			t.Fatalf("mount %v: %v: %s", args, err, out)
		}
	}
	mount("-t", "tmpfs", "-o", fmt.Sprintf("size=1m,mode=0700,uid=%s,gid=%s", u.Uid, u.Gid), "tmpfs", dir)
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})

	s, pool := newStore(t)
	ctx := context.Background()
	space := "full_" + strings.ReplaceAll(strings.TrimPrefix(filepath.Base(parent), "notes-diskfull-"), "-", "_")
	if _, err := pool.Exec(ctx, fmt.Sprintf("CREATE TABLESPACE %s LOCATION '%s'", pgx.Identifier{space}.Sanitize(), dir)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Back to the default tablespace, so the tablespace (and then the mount) can go.
		for _, q := range []string{"ALTER TABLE notes SET TABLESPACE pg_default", "DROP TABLESPACE " + pgx.Identifier{space}.Sanitize()} {
			if _, err := pool.Exec(context.Background(), q); err != nil {
				t.Errorf("%s: %v", q, err)
			}
		}
	})
	if _, err := pool.Exec(ctx, "ALTER TABLE notes SET TABLESPACE "+pgx.Identifier{space}.Sanitize()); err != nil {
		t.Fatal(err)
	}

	// Under the row size from which Postgres compresses a value (TOAST, about 2 kB), so each
	// note takes its 1.5 kB: 1 MiB holds about 600.
	body := strings.Repeat("b", 1500)
	var written []notes.Note
	var writeErr error
	for range 10000 {
		n, err := s.Create(ctx, "t", body)
		if err != nil {
			writeErr = err
			break
		}
		written = append(written, n)
	}
	if writeErr == nil {
		t.Fatalf("%d notes of 1.5 kB written into a 1 MiB tablespace without an error", len(written))
	}
	var pgErr *pgconn.PgError
	if !errors.As(writeErr, &pgErr) || pgErr.Code != "53100" {
		t.Fatalf("the write into the full tablespace failed with %v, want disk_full (53100)", writeErr)
	}
	if code := notes.ErrorCode(writeErr); code != notes.EUNAVAILABLE {
		t.Errorf("disk full is %q (%v), want %q (503)", code, writeErr, notes.EUNAVAILABLE)
	}
	t.Logf("%d notes written before: %v", len(written), writeErr)

	// Reads work on the full disk, and every acknowledged note is there.
	page, err := s.List(ctx, nil, 10)
	if err != nil || len(page.Notes) != 10 {
		t.Fatalf("List on a full disk = %d notes, %v", len(page.Notes), err)
	}
	for _, want := range written {
		got, err := s.Get(ctx, want.ID)
		if err != nil || got != want {
			t.Fatalf("note %d reads back as %+v, %v; written %+v", want.ID, got, err, want)
		}
	}

	mount("-o", "remount,size=8m", dir)
	if _, err := s.Create(ctx, "t", body); err != nil {
		t.Errorf("Create after the disk has room again: %v", err)
	}
}
