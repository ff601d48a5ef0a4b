package pgtest_test

import (
	"context"
	"database/sql"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/notes-stack/notes/internal/testing/pgtest"
	"github.com/notes-stack/notes/migrations"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestDatabasesAreIsolated(t *testing.T) {
	ctx := context.Background()
	a, b := pgtest.NewDatabase(t), pgtest.NewDatabase(t)
	ca, err := pgx.Connect(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close(ctx)
	if _, err := ca.Exec(ctx, "CREATE TABLE only_in_a (x int)"); err != nil {
		t.Fatal(err)
	}
	cb, err := pgx.Connect(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	defer cb.Close(ctx)
	var exists bool
	cb.QueryRow(ctx, "SELECT to_regclass('only_in_a') IS NOT NULL").Scan(&exists)
	if exists {
		t.Fatal("table leaked between databases")
	}
	var enc string
	cb.QueryRow(ctx, "SHOW server_encoding").Scan(&enc)
	if enc != "UTF8" {
		t.Errorf("server_encoding = %s", enc)
	}
}

func TestStopStart(t *testing.T) {
	s := pgtest.NewServer(t)
	ctx := context.Background()
	dsn := s.NewDatabase(t)
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if c, err := pgx.Connect(ctx, dsn); err == nil {
		c.Close(ctx)
		t.Fatal("connected to a stopped server")
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("after restart: %v", err)
	}
	c.Close(ctx)
	if s.PID() == 0 {
		t.Error("PID = 0 while running")
	}
}

func TestNewMigratedDatabase(t *testing.T) {
	ctx := context.Background()
	db, err := sql.Open("pgx", pgtest.NewMigratedDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	st, err := migrations.Status(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	if len(st) == 0 {
		t.Fatal("no migrations")
	}
	for _, m := range st {
		if !m.Applied {
			t.Errorf("migration %d (%s) not applied", m.Version, m.Path)
		}
	}
}
