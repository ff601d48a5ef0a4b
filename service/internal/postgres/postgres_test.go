package postgres_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/notes-stack/notes/internal/testing/pgtest"
	"github.com/notes-stack/notes/internal/testing/testutil"
	"github.com/notes-stack/notes/service/internal/notes"
	"github.com/notes-stack/notes/service/internal/postgres"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func newStore(t *testing.T) (*postgres.Store, *pgxpool.Pool) {
	t.Helper()
	pool, err := postgres.NewPool(context.Background(), pgtest.NewMigratedDatabase(t), postgres.PoolOptions{MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return postgres.New(pool), pool
}

func TestStoreCRUD(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	n, err := s.Create(ctx, "t", "b")
	if err != nil || n.ID == 0 || n.Title != "t" || n.Body != "b" || time.Since(n.CreatedAt) > time.Minute {
		t.Fatalf("Create = %+v, %v", n, err)
	}
	got, err := s.Get(ctx, n.ID)
	if err != nil || got != n {
		t.Fatalf("Get = %+v, %v; want %+v", got, err, n)
	}
	title := "t2"
	up, err := s.Update(ctx, n.ID, notes.Patch{Title: &title})
	if err != nil || up.Title != "t2" || up.Body != "b" {
		t.Fatalf("Update = %+v, %v", up, err)
	}
	if err := s.Delete(ctx, n.ID); err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"get":    func() error { _, err := s.Get(ctx, n.ID); return err }(),
		"update": func() error { _, err := s.Update(ctx, n.ID, notes.Patch{Title: &title}); return err }(),
		"delete": s.Delete(ctx, n.ID),
	} {
		if notes.ErrorCode(err) != notes.ENOTFOUND {
			t.Errorf("%s after delete: %v", name, err)
		}
	}
	// Content the database rejects maps to EUNPROCESS, not a 500.
	if _, err := s.Create(ctx, strings.Repeat("x", 161), ""); notes.ErrorCode(err) != notes.EUNPROCESS {
		t.Errorf("overlong title: %v", err)
	}
	if _, err := s.Create(ctx, "a\x00", ""); notes.ErrorCode(err) != notes.EUNPROCESS {
		t.Errorf("NUL: %v", err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Error(err)
	}
}

func TestSeed100k(t *testing.T) {
	t.Parallel()
	_, pool := newStore(t)
	start := time.Now()
	n, err := postgres.Seed(context.Background(), pool, 100_000)
	if err != nil || n != 100_000 {
		t.Fatalf("Seed = %d, %v", n, err)
	}
	t.Logf("seeded 100k notes in %s", time.Since(start)) // reported, not asserted
	var count int
	var distinct bool
	pool.QueryRow(context.Background(), "SELECT count(*), count(DISTINCT created_at) = count(*) FROM notes").Scan(&count, &distinct)
	if count != 100_000 || !distinct {
		t.Errorf("count %d, distinct created_at %v", count, distinct)
	}
}

func TestListCursor(t *testing.T) {
	t.Parallel()
	s, pool := newStore(t)
	if _, err := postgres.Seed(context.Background(), pool, 25); err != nil {
		t.Fatal(err)
	}
	var after *notes.Cursor
	var ids []int64
	for pages := 0; ; pages++ {
		p, err := s.List(context.Background(), after, 10)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range p.Notes {
			ids = append(ids, n.ID)
		}
		if p.Next == nil {
			if pages != 2 {
				t.Errorf("pages = %d, want 3", pages+1)
			}
			break
		}
		after = p.Next
	}
	if len(ids) != 25 || ids[0] != 25 || ids[24] != 1 {
		t.Errorf("ids = %v", ids)
	}
}

func TestUnavailable(t *testing.T) {
	t.Parallel()
	port, err := testutil.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	pool, err := postgres.NewPool(context.Background(), fmt.Sprintf("postgres://x@127.0.0.1:%d/x?connect_timeout=1", port), postgres.PoolOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	s := postgres.New(pool)
	if err := s.Ping(context.Background()); notes.ErrorCode(err) != notes.EUNAVAILABLE {
		t.Errorf("Ping = %v", err)
	}
	if _, err := s.Create(context.Background(), "t", ""); notes.ErrorCode(err) != notes.EUNAVAILABLE {
		t.Errorf("Create = %v", err)
	}
}

func TestCreateIdempotent(t *testing.T) {
	t.Parallel()
	s, pool := newStore(t)
	ctx := context.Background()
	n, created, err := s.CreateIdempotent(ctx, "key", "t", "b")
	if err != nil || !created || n.ID == 0 || n.Title != "t" || n.Body != "b" {
		t.Fatalf("CreateIdempotent = %+v, %v, %v", n, created, err)
	}
	// The same key returns the stored note, whatever the new payload is.
	again, created, err := s.CreateIdempotent(ctx, "key", "other", "payload")
	if err != nil || created || again != n {
		t.Fatalf("second CreateIdempotent = %+v, %v, %v; want %+v, false", again, created, err, n)
	}
	// Keys and plain creates do not interfere.
	plain, err := s.Create(ctx, "t", "b")
	if err != nil || plain.ID == n.ID {
		t.Fatalf("Create = %+v, %v", plain, err)
	}
	// Deleting the note frees the key.
	if err := s.Delete(ctx, n.ID); err != nil {
		t.Fatal(err)
	}
	fresh, created, err := s.CreateIdempotent(ctx, "key", "t", "b")
	if err != nil || !created || fresh.ID == n.ID {
		t.Fatalf("after delete = %+v, %v, %v", fresh, created, err)
	}
	// The column's CHECK backs the API's length rule.
	if _, _, err := s.CreateIdempotent(ctx, strings.Repeat("k", 256), "t", ""); notes.ErrorCode(err) != notes.EUNPROCESS {
		t.Errorf("256-byte key: %v", err)
	}
	if _, _, err := s.CreateIdempotent(ctx, "", "t", ""); notes.ErrorCode(err) != notes.EUNPROCESS {
		t.Errorf("empty key: %v", err)
	}
	if _, _, err := s.CreateIdempotent(ctx, "k2", strings.Repeat("x", 161), ""); notes.ErrorCode(err) != notes.EUNPROCESS {
		t.Errorf("overlong title: %v", err)
	}

	// Concurrent calls with one key: one row, one id for all, one "created".
	const workers = 8
	var wg sync.WaitGroup
	ids := make([]int64, workers)
	createdBy := make([]bool, workers)
	errs := make([]error, workers)
	start := make(chan struct{})
	for i := range workers {
		wg.Go(func() {
			<-start
			n, c, err := s.CreateIdempotent(ctx, "concurrent", "t", "b")
			ids[i], createdBy[i], errs[i] = n.ID, c, err
		})
	}
	close(start)
	wg.Wait()
	creators := 0
	for i := range workers {
		if errs[i] != nil || ids[i] != ids[0] {
			t.Fatalf("worker %d: id %d (first %d), %v", i, ids[i], ids[0], errs[i])
		}
		if createdBy[i] {
			creators++
		}
	}
	var rows int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM notes WHERE idempotency_key = 'concurrent'").Scan(&rows); err != nil || rows != 1 || creators != 1 {
		t.Errorf("rows %d, creators %d, err %v; want 1 and 1", rows, creators, err)
	}
}

func TestPoolCollector(t *testing.T) {
	t.Parallel()
	s, pool := newStore(t)
	if err := s.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(postgres.NewPoolCollector(pool))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		m := mf.GetMetric()[0]
		got[mf.GetName()] = m.GetGauge().GetValue() + m.GetCounter().GetValue()
	}
	if len(got) != 12 {
		t.Errorf("%d pgxpool metrics, want 12: %v", len(got), got)
	}
	// newStore sizes the pool to 4; the Ping acquired a connection once.
	if got["pgxpool_max_conns"] != 4 || got["pgxpool_acquire_count_total"] < 1 || got["pgxpool_total_conns"] < 1 {
		t.Errorf("metrics %v", got)
	}
}
