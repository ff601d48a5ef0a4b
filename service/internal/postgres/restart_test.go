package postgres_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/notes-stack/notes/internal/testing/pgtest"
	"github.com/notes-stack/notes/service/internal/postgres"
)

// TestNoBrokenConnectionAfterRestart: a pool whose connections were all
// open when Postgres went away (fast shutdown, or SIGKILL of every process
// as when its container is killed) hands out none of them once Postgres is
// back: every query after the restart succeeds, the first one included.
func TestNoBrokenConnectionAfterRestart(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		down func(*pgtest.Server) error
	}{
		{"fast shutdown", (*pgtest.Server).Stop},
		{"kill -9", (*pgtest.Server).Kill},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pg := pgtest.NewServer(t)
			const conns = 4
			pool, err := postgres.NewPool(context.Background(), pg.NewMigratedDatabase(t), postgres.PoolOptions{MaxConns: conns})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(pool.Close)
			s := postgres.New(pool)
			ctx := context.Background()
			if _, err := s.Create(ctx, "before", "the restart"); err != nil {
				t.Fatal(err)
			}
			lists := func(n int) []error {
				var wg sync.WaitGroup
				errs := make([]error, n)
				for i := range n {
					wg.Add(1)
					go func() {
						defer wg.Done()
						_, errs[i] = s.List(ctx, nil, 10)
					}()
				}
				wg.Wait()
				return errs
			}
			// Fill the pool with connections that were just used, so the pool's own
			// ping of connections idle for more than a second does not save them:
			// all of them held at once (concurrent queries alone may share one on a
			// busy machine), each used, then released.
			held := make([]*pgxpool.Conn, conns)
			for i := range held {
				if held[i], err = pool.Acquire(ctx); err != nil {
					t.Fatal(err)
				}
				if _, err := held[i].Exec(ctx, "SELECT 1"); err != nil {
					t.Fatal(err)
				}
			}
			for _, c := range held {
				c.Release()
			}
			if got := pool.Stat().TotalConns(); got != conns {
				t.Fatalf("%d connections open before the restart, want %d", got, conns)
			}
			if err := tc.down(pg); err != nil {
				t.Fatal(err)
			}
			if err := pg.Start(); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			var failed []error
			for _, err := range lists(4 * conns) {
				if err != nil {
					failed = append(failed, err)
				}
			}
			if len(failed) > 0 {
				t.Errorf("%d of %d queries after the restart failed, e.g. %v", len(failed), 4*conns, failed[0])
			}
			t.Logf("%d queries in %v after Postgres was back", 4*conns, time.Since(start))
		})
	}
}
