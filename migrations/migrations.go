// Package migrations holds the database schema as goose v3 SQL files and
// applies them through goose's Provider API.
//
// Every function takes a *sql.DB (use stdlib.OpenDBFromPool over a pgx pool)
// and holds a Postgres session-level advisory lock while it migrates, so any
// number of replicas or jobs may run Up at the same time: each migration is
// applied exactly once and the others wait, then find nothing to do.
package migrations

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

//go:embed *.sql
var files embed.FS

// FS returns the embedded migration files.
func FS() fs.FS { return files }

// VersionTable is goose's bookkeeping table. The application role gets no
// privileges on it.
const VersionTable = "goose_db_version"

// lockID is goose's default advisory lock id; all migrators of one database
// must agree on it.
const lockID = lock.DefaultLockID

func newProvider(db *sql.DB) (*goose.Provider, error) {
	// Retry every second for up to 10 minutes: a waiting migrator should
	// notice quickly that the one holding the lock has finished.
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(lockID), lock.WithLockTimeout(1, 600))
	if err != nil {
		return nil, fmt.Errorf("migrations: session locker: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, files,
		goose.WithSessionLocker(locker),
		goose.WithDisableGlobalRegistry(true),
	)
	if err != nil {
		return nil, fmt.Errorf("migrations: provider: %w", err)
	}
	return p, nil
}

// Result describes one applied (or rolled back) migration.
type Result struct {
	Version   int64
	Path      string
	Direction string
}

// Up applies every pending migration and returns what it applied (nothing
// when the schema is current).
func Up(ctx context.Context, db *sql.DB) ([]Result, error) {
	p, err := newProvider(db)
	if err != nil {
		return nil, err
	}
	res, err := p.Up(ctx)
	out := convert(res)
	if err != nil {
		return out, fmt.Errorf("migrations: up: %w", err)
	}
	return out, nil
}

// Down rolls back the most recent migration.
func Down(ctx context.Context, db *sql.DB) (Result, error) {
	p, err := newProvider(db)
	if err != nil {
		return Result{}, err
	}
	res, err := p.Down(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("migrations: down: %w", err)
	}
	return convert([]*goose.MigrationResult{res})[0], nil
}

// DownTo rolls back every migration above version (0 removes them all).
func DownTo(ctx context.Context, db *sql.DB, version int64) ([]Result, error) {
	p, err := newProvider(db)
	if err != nil {
		return nil, err
	}
	res, err := p.DownTo(ctx, version)
	out := convert(res)
	if err != nil {
		return out, fmt.Errorf("migrations: down to %d: %w", version, err)
	}
	return out, nil
}

// MigrationStatus is the state of one migration.
type MigrationStatus struct {
	Version int64
	Path    string
	Applied bool
	// AppliedAt is zero when the migration is pending.
	AppliedAt string
}

// Status lists every known migration and whether it is applied.
func Status(ctx context.Context, db *sql.DB) ([]MigrationStatus, error) {
	p, err := newProvider(db)
	if err != nil {
		return nil, err
	}
	st, err := p.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrations: status: %w", err)
	}
	out := make([]MigrationStatus, 0, len(st))
	for _, s := range st {
		row := MigrationStatus{Version: s.Source.Version, Path: s.Source.Path, Applied: s.State == goose.StateApplied}
		if row.Applied {
			row.AppliedAt = s.AppliedAt.UTC().Format("2006-01-02T15:04:05Z")
		}
		out = append(out, row)
	}
	return out, nil
}

func convert(in []*goose.MigrationResult) []Result {
	out := make([]Result, 0, len(in))
	for _, r := range in {
		if r == nil || r.Source == nil {
			continue
		}
		out = append(out, Result{Version: r.Source.Version, Path: r.Source.Path, Direction: r.Direction})
	}
	return out
}
