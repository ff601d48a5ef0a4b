package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/notes-stack/notes/service/internal/postgres"
)

func runSeed(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("seed", flag.ContinueOnError)
	count := fs.Int("count", 100, "number of notes to insert")
	if err := parseFlags(fs, args, stderr, "Usage: notes seed --count N\n\nInserts N generated notes with COPY.\n\n"); err != nil {
		return helpOK(err)
	}
	if fs.NArg() > 0 {
		return usageErrorf("seed takes no arguments")
	}
	if *count < 1 || *count > 100_000_000 {
		return usageErrorf("--count must be from 1 to 100000000")
	}
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	pool, err := newPool(ctx, cfg, postgres.PoolOptions{MaxConns: 2})
	if err != nil {
		return err
	}
	defer pool.Close()
	start := time.Now()
	n, err := postgres.Seed(ctx, pool, *count)
	if err != nil {
		return fmt.Errorf("seed (did you run \"notes migrate up\"?): %w", err)
	}
	fmt.Fprintf(stdout, "seeded %d notes in %s\n", n, time.Since(start).Round(time.Millisecond))
	return nil
}
