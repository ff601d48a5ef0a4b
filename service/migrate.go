package main

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/notes-stack/notes/migrations"
	"github.com/notes-stack/notes/service/internal/config"
	"github.com/notes-stack/notes/service/internal/postgres"
)

const migrateUsage = `Usage: notes migrate [--wait DURATION] up|down|status

  up      apply all pending migrations, then, when APP_DB_ROLE and
          APP_DB_PASSWORD are set, create or update that role with DML-only
          privileges (idempotent; rotates the password)
  down    roll back the most recent migration
  status  list migrations and whether each is applied

Connect as the database owner. Safe to run from several processes at once.

`

func runMigrate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	wait := fs.Duration("wait", 60*time.Second, "how long to wait for the database to accept connections")
	if err := parseFlags(fs, args, stderr, migrateUsage); err != nil {
		return helpOK(err)
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return usageErrorf("migrate needs exactly one of up, down, status")
	}
	action := fs.Arg(0)
	if action != "up" && action != "down" && action != "status" {
		fs.Usage()
		return usageErrorf("migrate: unknown action %q (want up, down or status)", action)
	}
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	if action == "up" {
		if err := cfg.ValidateAppRole(); err != nil {
			return usageError(err)
		}
		if cfg.AppDBRole != "" {
			if err := migrations.ValidateRoleName(cfg.AppDBRole); err != nil {
				return usageError(&config.Error{Var: "APP_DB_ROLE", Msg: err.Error()})
			}
		}
	}
	log := newLogger(cfg, stdout)

	pool, err := newPool(ctx, cfg, postgres.PoolOptions{MaxConns: 2})
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := waitForDB(ctx, pool, *wait, log); err != nil {
		return err
	}
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()

	switch action {
	case "up":
		res, err := migrations.Up(ctx, db)
		for _, r := range res {
			log.Info("migration applied", "version", r.Version, "file", r.Path)
		}
		if err != nil {
			return err
		}
		if len(res) == 0 {
			log.Info("migrations: schema is up to date")
		}
		if cfg.AppDBRole != "" {
			if err := migrations.EnsureAppRole(ctx, db, cfg.AppDBRole, cfg.AppDBPassword); err != nil {
				return err
			}
			log.Info("application role ensured", "role", cfg.AppDBRole)
		}
	case "down":
		r, err := migrations.Down(ctx, db)
		if err != nil {
			return err
		}
		log.Info("migration rolled back", "version", r.Version, "file", r.Path)
	case "status":
		return printStatus(ctx, db, stdout)
	}
	return nil
}

func printStatus(ctx context.Context, db *sql.DB, w io.Writer) error {
	st, err := migrations.Status(ctx, db)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "%-8s %-8s %-22s %s\n", "VERSION", "STATE", "APPLIED AT", "FILE")
	for _, s := range st {
		state, at := "pending", "-"
		if s.Applied {
			state, at = "applied", s.AppliedAt
		}
		fmt.Fprintf(w, "%-8d %-8s %-22s %s\n", s.Version, state, at, s.Path)
	}
	return nil
}

// waitForDB pings until the database answers or wait runs out (the Flask
// entrypoint waited for the database too).
func waitForDB(ctx context.Context, pool *pgxpool.Pool, wait time.Duration, log *slog.Logger) error {
	deadline := time.Now().Add(wait)
	for attempt := 0; ; attempt++ {
		pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		err := pool.Ping(pctx)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("database not reachable after %s: %w", wait, err)
		}
		if attempt == 0 {
			log.Info("waiting for the database", "err", err.Error())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}
