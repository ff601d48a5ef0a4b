package migrations_test

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/notes-stack/notes/internal/testing/pgtest"
	"github.com/notes-stack/notes/migrations"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func openDB(t *testing.T, dsn string) (*pgxpool.Pool, *sql.DB) {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	db := stdlib.OpenDBFromPool(pool)
	t.Cleanup(func() { db.Close(); pool.Close() })
	return pool, db
}

func ctxT(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func tableExists(t *testing.T, pool *pgxpool.Pool, name string) bool {
	t.Helper()
	var ok bool
	if err := pool.QueryRow(context.Background(), "SELECT to_regclass($1) IS NOT NULL", name).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	return ok
}

func columnExists(t *testing.T, pool *pgxpool.Pool, table, column string) bool {
	t.Helper()
	var ok bool
	if err := pool.QueryRow(context.Background(),
		"SELECT EXISTS (SELECT FROM information_schema.columns WHERE table_name = $1 AND column_name = $2)",
		table, column).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	return ok
}

func TestUpDownUp(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	pool, db := openDB(t, pgtest.NewDatabase(t))

	res, err := migrations.Up(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) < 2 {
		t.Fatalf("applied %d migrations, want at least 2", len(res))
	}
	if !tableExists(t, pool, "notes") || !tableExists(t, pool, "notes_created_at_id_idx") ||
		!columnExists(t, pool, "notes", "idempotency_key") || !tableExists(t, pool, "notes_idempotency_key_idx") {
		t.Fatal("notes table, column or index missing after up")
	}
	again, err := migrations.Up(ctx, db)
	if err != nil || len(again) != 0 {
		t.Fatalf("second up applied %v, err %v; want nothing", again, err)
	}
	st, err := migrations.Status(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st {
		if !s.Applied {
			t.Errorf("migration %d not applied", s.Version)
		}
	}

	// Down one file at a time; each step removes exactly what its file added.
	steps := []struct {
		version int64
		gone    func() bool
		kept    func() bool
	}{
		{3,
			func() bool {
				return !columnExists(t, pool, "notes", "idempotency_key") && !tableExists(t, pool, "notes_idempotency_key_idx")
			},
			func() bool { return tableExists(t, pool, "notes_created_at_id_idx") }},
		{2,
			func() bool { return !tableExists(t, pool, "notes_created_at_id_idx") },
			func() bool { return tableExists(t, pool, "notes") }},
		{1,
			func() bool { return !tableExists(t, pool, "notes") },
			func() bool { return true }},
	}
	if len(steps) != len(st) {
		t.Fatalf("test knows %d migrations, there are %d: add a step for the new file", len(steps), len(st))
	}
	for _, step := range steps {
		r, err := migrations.Down(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		if r.Version != step.version || !step.gone() || !step.kept() {
			t.Fatalf("down rolled back %d (want %d); removed: %v, rest intact: %v", r.Version, step.version, step.gone(), step.kept())
		}
	}
	res2, err := migrations.Up(ctx, db)
	if err != nil || len(res2) != len(res) {
		t.Fatalf("up after down applied %d, err %v; want %d", len(res2), err, len(res))
	}

	// Every file's down and up again over a populated table, then all of
	// them at once.
	if _, err := pool.Exec(ctx, "INSERT INTO notes (title, idempotency_key) VALUES ('a', 'k'), ('b', NULL)"); err != nil {
		t.Fatal(err)
	}
	for v := int64(len(st)) - 1; v >= 1; v-- {
		if _, err := migrations.DownTo(ctx, db, v); err != nil {
			t.Fatal(err)
		}
		if _, err := migrations.Up(ctx, db); err != nil {
			t.Fatalf("up again above %d with data: %v", v, err)
		}
	}
	if _, err := migrations.DownTo(ctx, db, 0); err != nil {
		t.Fatal(err)
	}
	if res3, err := migrations.Up(ctx, db); err != nil || len(res3) != len(res) {
		t.Fatalf("final up applied %d, err %v", len(res3), err)
	}
}

func TestSchemaConstraints(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	pool, db := openDB(t, pgtest.NewDatabase(t))
	if _, err := migrations.Up(ctx, db); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		title string
		code  string
	}{
		{"ok 160 chars multibyte", strings.Repeat("é", 160), ""},
		{"161 chars", strings.Repeat("a", 161), "22001"},
		{"blank", "   ", "23514"},
		{"empty", "", "23514"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := pool.Exec(ctx, "INSERT INTO notes (title) VALUES ($1)", tc.title)
			var pgErr *pgconn.PgError
			switch {
			case tc.code == "" && err != nil:
				t.Fatalf("insert failed: %v", err)
			case tc.code != "" && (!errors.As(err, &pgErr) || pgErr.Code != tc.code):
				t.Fatalf("err = %v, want SQLSTATE %s", err, tc.code)
			}
		})
	}
	// Idempotency keys: the previous release's insert (no key) still works,
	// any number of NULLs, unique non-NULL keys of 1 to 255 characters.
	keyTests := []struct {
		name string
		sql  string
		code string
	}{
		{"old release insert", "INSERT INTO notes (title, body) VALUES ('old', 'x') RETURNING id, title, body, created_at", ""},
		{"two NULL keys", "INSERT INTO notes (title, idempotency_key) VALUES ('n1', NULL), ('n2', NULL)", ""},
		{"key", "INSERT INTO notes (title, idempotency_key) VALUES ('k', 'key-1')", ""},
		{"255 chars", "INSERT INTO notes (title, idempotency_key) VALUES ('k', repeat('k', 255))", ""},
		{"duplicate key", "INSERT INTO notes (title, idempotency_key) VALUES ('k', 'key-1')", "23505"},
		{"empty key", "INSERT INTO notes (title, idempotency_key) VALUES ('k', '')", "23514"},
		{"256 chars", "INSERT INTO notes (title, idempotency_key) VALUES ('k', repeat('k', 256))", "23514"},
		{"on conflict infers the partial index",
			"INSERT INTO notes (title, idempotency_key) VALUES ('k', 'key-1') ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING", ""},
	}
	for _, tc := range keyTests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := pool.Exec(ctx, tc.sql)
			var pgErr *pgconn.PgError
			switch {
			case tc.code == "" && err != nil:
				t.Fatalf("failed: %v", err)
			case tc.code != "" && (!errors.As(err, &pgErr) || pgErr.Code != tc.code):
				t.Fatalf("err = %v, want SQLSTATE %s", err, tc.code)
			}
		})
	}

	// The keyset query walks the index instead of sorting the table.
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off"); err != nil {
		t.Fatal(err)
	}
	rows, _ := tx.Query(ctx, "EXPLAIN SELECT id FROM notes WHERE (created_at, id) < (now(), 5) ORDER BY created_at DESC, id DESC LIMIT 51")
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	plan := strings.Join(lines, "\n")
	if !strings.Contains(plan, "notes_created_at_id_idx") || strings.Contains(plan, "Sort") {
		t.Errorf("list query does not use the index:\n%s", plan)
	}
}

func TestConcurrentMigrators(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	dsn := pgtest.NewDatabase(t)
	const n = 4
	var wg sync.WaitGroup
	results := make([][]migrations.Result, n)
	errs := make([]error, n)
	for i := 0; i < n; i++ {
		_, db := openDB(t, dsn)
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = migrations.Up(ctx, db)
		}()
	}
	wg.Wait()
	applied := map[int64]int{}
	for i := 0; i < n; i++ {
		if errs[i] != nil {
			t.Fatalf("migrator %d: %v", i, errs[i])
		}
		for _, r := range results[i] {
			applied[r.Version]++
		}
	}
	pool, _ := openDB(t, dsn)
	var rowsInTable int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM goose_db_version WHERE version_id > 0").Scan(&rowsInTable); err != nil {
		t.Fatal(err)
	}
	if len(applied) < 2 || rowsInTable != len(applied) {
		t.Fatalf("applied %v, version rows %d", applied, rowsInTable)
	}
	for v, c := range applied {
		if c != 1 {
			t.Errorf("migration %d applied %d times, want exactly once", v, c)
		}
	}
}

func TestEnsureAppRole(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	dsn := pgtest.NewDatabase(t)
	_, db := openDB(t, dsn)
	if _, err := migrations.Up(ctx, db); err != nil {
		t.Fatal(err)
	}
	// A name and a password that need quoting.
	role := `notes app "rw" ` + strings.ReplaceAll(t.Name(), "/", "_")
	password := `p'a"ss; DROP TABLE notes; --\`
	for i := 0; i < 2; i++ { // idempotent
		if err := migrations.EnsureAppRole(ctx, db, role, password); err != nil {
			t.Fatalf("EnsureAppRole #%d: %v", i, err)
		}
	}
	t.Cleanup(func() {
		admin, err := pgx.Connect(context.Background(), dsn)
		if err == nil {
			ident := pgx.Identifier{role}.Sanitize()
			admin.Exec(context.Background(), "DROP OWNED BY "+ident)
			admin.Exec(context.Background(), "DROP ROLE "+ident)
			admin.Close(context.Background())
		}
	})

	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	cfg.User, cfg.Password = role, password
	app, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("app role cannot log in: %v", err)
	}
	defer app.Close(context.Background())

	allowed := []string{
		"INSERT INTO notes (title, body) VALUES ('t', 'b')",
		"INSERT INTO notes (title, body, idempotency_key) VALUES ('t', 'b', 'k') ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING RETURNING id",
		"INSERT INTO notes (title, body, idempotency_key) VALUES ('t', 'b', 'k') ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING RETURNING id",
		"SELECT id, title, body, created_at FROM notes WHERE idempotency_key = 'k'",
		"SELECT count(*) FROM notes",
		"UPDATE notes SET body = 'x'",
		"DELETE FROM notes",
	}
	for _, q := range allowed {
		if _, err := app.Exec(ctx, q); err != nil {
			t.Errorf("%s: %v", q, err)
		}
	}
	denied := []string{
		"DROP TABLE notes",
		"ALTER TABLE notes ADD COLUMN x int",
		"CREATE TABLE evil (id int)",
		"TRUNCATE notes",
		"SELECT * FROM goose_db_version",
		"INSERT INTO goose_db_version (version_id, is_applied) VALUES (99, true)",
		"DELETE FROM goose_db_version",
		"CREATE INDEX evil_idx ON notes (body)",
	}
	for _, q := range denied {
		_, err := app.Exec(ctx, q)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || (pgErr.Code != "42501" && pgErr.Code != "42P17") {
			t.Errorf("%s: err = %v, want insufficient_privilege", q, err)
		}
	}

	// Rotation: the old password stops working.
	if err := migrations.EnsureAppRole(ctx, db, role, "new-password"); err != nil {
		t.Fatal(err)
	}
	if c, err := pgx.ConnectConfig(ctx, cfg); err == nil {
		c.Close(context.Background())
		t.Fatal("old password still works after rotation")
	}
	cfg.Password = "new-password"
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("new password: %v", err)
	}
	c.Close(context.Background())
}

func TestEnsureAppRoleRejects(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	_, db := openDB(t, pgtest.NewDatabase(t))
	tests := []struct{ name, role, password string }{
		{"empty role", "", "x"},
		{"reserved", "pg_monitor", "x"},
		{"too long", strings.Repeat("r", 64), "x"},
		{"no password", "someone", ""},
		{"self", "postgres", "x"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := migrations.EnsureAppRole(ctx, db, tc.role, tc.password); err == nil {
				t.Fatal("want error")
			}
		})
	}
}
