package main

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/notes-stack/notes/internal/testing/pgtest"
	"github.com/notes-stack/notes/internal/testing/testutil"
)

// backupRun runs infra/scripts/notes-backup.sh against a real Postgres the test owns, with the
// Postgres client tools of pgtest's installation and the connection in libpq's environment, as
// in the backup container.
type backupRun struct {
	t   *testing.T
	pg  *pgtest.Server
	dsn string
	dir string // BACKUP_DIR
	env map[string]string
}

func newBackupRun(t *testing.T, pg *pgtest.Server) *backupRun {
	t.Helper()
	dsn := pg.NewMigratedDatabase(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	pass := filepath.Join(tmp, "pgpass")
	// The database field is "*": the test restore connects to its scratch database too.
	if err := os.WriteFile(pass, []byte(pgpassLine("127.0.0.1", strconv.Itoa(pg.Port), "*", "postgres", pg.Password)), 0o600); err != nil {
		t.Fatal(err)
	}
	b := &backupRun{t: t, pg: pg, dsn: dsn, dir: filepath.Join(tmp, "backups"), env: map[string]string{
		"PATH":               pg.BinDir + ":" + os.Getenv("PATH"),
		"PGHOST":             "127.0.0.1",
		"PGPORT":             strconv.Itoa(pg.Port),
		"PGUSER":             "postgres",
		"PGDATABASE":         strings.TrimPrefix(u.Path, "/"),
		"PGPASSFILE":         pass,
		"PGSSLMODE":          "disable",
		"PGCONNECT_TIMEOUT":  "3",
		"BACKUP_INTERVAL":    "3600",
		"BACKUP_RETRY":       "1",
		"BACKUP_MIN_FREE_KB": "0",
		"BACKUP_STATE_DIR":   tmp,
	}}
	b.env["BACKUP_DIR"] = b.dir
	return b
}

func (b *backupRun) cmd(args ...string) *exec.Cmd {
	cmd := exec.Command("sh", append([]string{filepath.Join("scripts", "notes-backup.sh")}, args...)...)
	for k, v := range b.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	return cmd
}

// run runs the script to its end and returns stdout, stderr and its exit status.
func (b *backupRun) run(args ...string) (string, string, int) {
	b.t.Helper()
	cmd := b.cmd(args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		b.t.Fatalf("notes-backup %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

func (b *backupRun) exec(sql string, args ...any) {
	b.t.Helper()
	conn, err := pgx.Connect(context.Background(), b.dsn)
	if err != nil {
		b.t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), sql, args...); err != nil {
		b.t.Fatalf("%s: %v", sql, err)
	}
}

func (b *backupRun) notes() int {
	b.t.Helper()
	conn, err := pgx.Connect(context.Background(), b.dsn)
	if err != nil {
		b.t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM notes").Scan(&n); err != nil {
		b.t.Fatal(err)
	}
	return n
}

func (b *backupRun) files() []string {
	b.t.Helper()
	entries, _ := os.ReadDir(b.dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func (b *backupRun) seed(n int) {
	b.t.Helper()
	b.exec("INSERT INTO notes (title, body) SELECT 'note ' || i, repeat(md5(i::text), 8) FROM generate_series(1, $1) i", n)
}

// TestBackupScript runs notes-backup.sh against a real Postgres: dump, test restore, health,
// restore, a full backup volume, and retries after a failed dump.
func TestBackupScript(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	pg := pgtest.NewServer(t)

	t.Run("dump, test restore, restore", func(t *testing.T) {
		b := newBackupRun(t, pg)
		b.seed(1000)
		out, errOut, code := b.run("now")
		if code != 0 {
			t.Fatalf("now: exit %d\n%s", code, errOut)
		}
		f := strings.TrimSpace(out)
		base := strings.TrimSuffix(f, ".dump")
		counts, err := os.ReadFile(base + ".counts")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(counts), "public.notes|1000\n") {
			t.Errorf("counts at dump time:\n%s", counts)
		}
		if _, err := os.Stat(base + ".verified"); err != nil {
			t.Errorf("dump not marked verified: %v\n%s", err, errOut)
		}
		if !regexp.MustCompile(`verified notes-\S+\.dump: restored into \S+_restore_test, \d+ tables, \d+ rows, as in the source at dump time`).MatchString(errOut) {
			t.Errorf("no verification line:\n%s", errOut)
		}
		b.exec("SELECT 1") // the scratch database is gone again:
		conn, err := pgx.Connect(context.Background(), b.dsn)
		if err != nil {
			t.Fatal(err)
		}
		var scratch int
		conn.QueryRow(context.Background(), "SELECT count(*) FROM pg_database WHERE datname LIKE '%restore_test'").Scan(&scratch)
		conn.Close(context.Background())
		if scratch != 0 {
			t.Errorf("%d scratch databases left", scratch)
		}
		if out, _, code := b.run("health"); code != 0 || !strings.Contains(out, "is 0s old") && !strings.Contains(out, "s old") {
			t.Errorf("health after a good dump: exit %d, %q", code, out)
		}

		// A dump whose restored copy does not match the source at dump time fails the test
		// restore loudly; so does an unreadable one.
		good, _ := os.ReadFile(base + ".counts")
		os.WriteFile(base+".counts", bytes.Replace(good, []byte("public.notes|1000"), []byte("public.notes|999"), 1), 0o644)
		if _, errOut, code := b.run("verify", f); code == 0 || !strings.Contains(errOut, "differs from the source at dump time") {
			t.Errorf("verify with other counts: exit %d\n%s", code, errOut)
		}
		os.WriteFile(base+".counts", good, 0o644)
		if _, errOut, code := b.run("verify", f); code != 0 {
			t.Errorf("verify of the good dump: exit %d\n%s", code, errOut)
		}

		b.exec("DELETE FROM notes WHERE id % 2 = 0")
		if _, errOut, code := b.run("restore", filepath.Base(f)); code != 0 {
			t.Fatalf("restore: exit %d\n%s", code, errOut)
		}
		if n := b.notes(); n != 1000 {
			t.Errorf("%d notes after the restore, want 1000", n)
		}
	})

	t.Run("backup volume full", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("mounting a small tmpfs as the backup volume needs root")
		}
		b := newBackupRun(t, pg)
		b.seed(20000) // a dump of about 500 KiB
		if err := os.MkdirAll(b.dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1200k", "tmpfs", b.dir).CombinedOutput(); err != nil {
			t.Skipf("cannot mount a tmpfs: %v %s", err, out)
		}
		t.Cleanup(func() { exec.Command("umount", b.dir).Run() })
		out, errOut, code := b.run("now")
		if code != 0 {
			t.Fatalf("first dump: exit %d\n%s", code, errOut)
		}
		first := filepath.Base(strings.TrimSpace(out))
		before := b.files()
		// The next dump does not fit: refused before the database is asked (it is stopped for this
		// run, so any attempt to reach it would say so instead), and the good dump stays.
		b.env["PGPORT"] = "1"
		_, errOut, code = b.run("now")
		if code == 0 || !strings.Contains(errOut, "not enough space") || strings.Contains(errOut, "pg_dump") || strings.Contains(errOut, "psql") {
			t.Errorf("a dump into a full volume: exit %d\n%s", code, errOut)
		}
		if after := b.files(); strings.Join(after, " ") != strings.Join(before, " ") {
			t.Errorf("files before %v, after %v", before, after)
		}
		if !strings.Contains(strings.Join(b.files(), " "), first) {
			t.Errorf("the good dump %s is gone", first)
		}
		if out, _, code := b.run("list"); code != 0 || strings.TrimSpace(out) != first {
			t.Errorf("list = %q (exit %d), want %s", out, code, first)
		}
		// The healthcheck says so at once, not two intervals later: no retry can succeed.
		if out, _, code := b.run("health"); code == 0 || !strings.Contains(out, "not enough space") {
			t.Errorf("health with a full backup volume: exit %d, %q; want unhealthy, not enough space", code, out)
		}
	})

	t.Run("retry with backoff after a failed dump", func(t *testing.T) {
		pg := pgtest.NewServer(t)
		b := newBackupRun(t, pg)
		b.seed(10)
		if err := pg.Stop(); err != nil {
			t.Fatal(err)
		}
		cmd := b.cmd("loop")
		var logs testutil.SyncBuffer
		cmd.Stderr = &logs
		cmd.WaitDelay = 10 * time.Second
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() })
		waitFor(t, 30*time.Second, "two failed dumps", func() bool { return strings.Contains(logs.String(), "next try in 2s") })
		if err := pg.Start(); err != nil {
			t.Fatal(err)
		}
		up := time.Now()
		// The interval is an hour: only a retry makes this dump.
		waitFor(t, 60*time.Second, "a verified dump after Postgres is back", func() bool {
			for _, f := range b.files() {
				if strings.HasSuffix(f, ".verified") {
					return true
				}
			}
			return false
		})
		l := logs.String()
		for _, want := range []string{"next try in 1s", "next try in 2s"} {
			if !strings.Contains(l, want) {
				t.Errorf("log lacks %q:\n%s", want, l)
			}
		}
		t.Logf("first good dump %v after Postgres accepted connections again (interval 1h, retries 1s, 2s, 4s, ...)", time.Since(up).Round(100*time.Millisecond))
		if out, _, code := b.run("health"); code != 0 {
			t.Errorf("health: exit %d %s", code, out)
		}
	})
}

// TestBackupHealth: the healthcheck turns unhealthy once the last good dump is older than two
// intervals, or when there has been none for two intervals since the loop started.
func TestBackupHealth(t *testing.T) {
	t.Parallel()
	const interval = time.Hour
	for _, tc := range []struct {
		name     string
		started  time.Duration // ago; 0: no marker
		dump     time.Duration // age of the newest dump; 0: none
		verified bool
		healthy  bool
		say      string // a regular expression
	}{
		{"just started, no dump", time.Minute, 0, false, true, "no good dump yet"},
		{"started long ago, no dump", 3 * interval, 0, false, false, "no good dump"},
		{"no marker, no dump", 0, 0, false, false, "no good dump"},
		// The ages allow the script a few seconds to start on a loaded machine.
		{"fresh verified dump", 3 * interval, time.Minute, true, true, `is 6\ds old`},
		{"verified dump of 1.5 intervals", 3 * interval, 90 * time.Minute, true, true, `is 540\ds old`},
		{"verified dump of 2.5 intervals", 3 * interval, 150 * time.Minute, true, false, `more than 2 x BACKUP_INTERVAL \(7200s\)`},
		{"fresh dump that failed its test restore", 3 * interval, time.Minute, false, false, "no good dump"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tmp := t.TempDir()
			dir := filepath.Join(tmp, "backups")
			os.MkdirAll(dir, 0o755)
			now := time.Now()
			touch := func(p string, ago time.Duration) {
				if err := os.WriteFile(p, nil, 0o644); err != nil {
					t.Fatal(err)
				}
				os.Chtimes(p, now.Add(-ago), now.Add(-ago))
			}
			if tc.started > 0 {
				touch(filepath.Join(tmp, "notes-backup.started"), tc.started)
			}
			if tc.dump > 0 {
				touch(filepath.Join(dir, "notes-20260101T000000Z.dump"), tc.dump)
				if tc.verified {
					touch(filepath.Join(dir, "notes-20260101T000000Z.verified"), tc.dump)
				}
			}
			cmd := exec.Command("sh", filepath.Join("scripts", "notes-backup.sh"), "health")
			cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "BACKUP_DIR=" + dir, "BACKUP_STATE_DIR=" + tmp,
				fmt.Sprintf("BACKUP_INTERVAL=%d", int(interval.Seconds()))}
			out, err := cmd.CombinedOutput()
			if healthy := err == nil; healthy != tc.healthy || !regexp.MustCompile(tc.say).Match(out) {
				t.Errorf("health: %v (healthy %v, want %v), %q, want it to say %q", err, healthy, tc.healthy, out, tc.say)
			}
		})
	}
}

// waitFor polls cond every 100 ms until it holds, failing the test after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v", what, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestBackupHealthcheckOnBothEngines: the backup container (engine containers) and service
// (engine swarm) run `notes-backup health` as their healthcheck, and notes:backupVerify reaches
// the script as BACKUP_VERIFY.
func TestBackupHealthcheckOnBothEngines(t *testing.T) {
	want := strings.Join(backupHealthTest, " ")
	for _, verify := range []string{"true", "false"} {
		wantEnv := map[string]string{"true": "1", "false": "0"}[verify]
		t.Run("containers verify="+verify, func(t *testing.T) {
			cfg := stackConfig(t, "dev")
			cfg["notes:backupVerify"] = verify
			m := mustDeploy(t, "dev", cfg)
			b, env := backupEnv(t, m, "dev")
			if got := strings.Join(strs(obj(prop(b, "healthcheck"))["tests"]), " "); got != want {
				t.Errorf("backup healthcheck = %q, want %q", got, want)
			}
			if env["BACKUP_VERIFY"] != wantEnv {
				t.Errorf("BACKUP_VERIFY = %q, want %q", env["BACKUP_VERIFY"], wantEnv)
			}
		})
		t.Run("swarm verify="+verify, func(t *testing.T) {
			m := mustDeploy(t, "dev", swarmConfig(t, map[string]string{"notes:backups": "true", "notes:backupVerify": verify}))
			spec := containerSpec(m.named(t, "notes-dev-backup"))
			if got := strings.Join(strs(obj(spec["healthcheck"])["tests"]), " "); got != want {
				t.Errorf("backup service healthcheck = %q, want %q", got, want)
			}
			if got := str(obj(spec["env"])["BACKUP_VERIFY"]); got != wantEnv {
				t.Errorf("BACKUP_VERIFY = %q, want %q", got, wantEnv)
			}
		})
	}
}
