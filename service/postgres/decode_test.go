package postgres

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/notes-stack/notes/migrations"
	"github.com/notes-stack/notes/service/pgtest"
)

// TestDecodeNoteMatchesScan checks the raw-value fast path against pgx's
// own scanning, row by row, including values it leaves to pgx.
func TestDecodeNoteMatchesScan(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, err := NewPool(ctx, pgtest.NewDatabase(t), PoolOptions{MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	if _, err := migrations.Up(ctx, db); err != nil {
		t.Fatal(err)
	}
	for _, r := range []struct{ title, body, at string }{
		{"plain", "", "now()"},
		{"é 😀 \u2028", "body\nwith \"quotes\" and \\", "'2024-02-29 23:59:59.999999+05'"},
		{"y1", "b", "'0001-01-01 00:00:00+00'"},
		{"y9999", "b", "'9999-12-31 23:59:59.999999+00'"},
		{"pre-y2k", "b", "'1999-12-31 23:59:59.000001+00'"},
		{"epoch", "b", "'1970-01-01 00:00:00+00'"},
		{"y10000", "b", "'10000-01-01 00:00:00+00'"},
		{"bc", "b", "'0044-03-15 12:00:00+00 BC'"},
	} {
		if _, err := pool.Exec(ctx, "INSERT INTO notes (title, body, created_at) VALUES ($1, $2, "+r.at+")", r.title, r.body); err != nil {
			t.Fatal(err)
		}
	}
	var fast, slow int
	check := func(pool *pgxpool.Pool) {
		rows, err := pool.Query(ctx, ListQuery, 100)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			want, err := scanNote(rows)
			if err != nil {
				t.Fatal(err)
			}
			got, ok := decodeNote(rows.FieldDescriptions(), rows.RawValues())
			if !ok {
				slow++
				continue
			}
			fast++
			if got != want || !got.CreatedAt.Equal(want.CreatedAt) || got.CreatedAt.Location() != want.CreatedAt.Location() {
				t.Errorf("decodeNote = %+v, scan = %+v", got, want)
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
	}
	check(pool)
	if fast != 6 || slow != 2 {
		t.Errorf("fast path rows = %d, pgx rows = %d; want 6 and 2", fast, slow)
	}
	// Store.List takes the same rows through nextNote.
	page, err := New(pool).List(ctx, nil, 100)
	if err != nil || len(page.Notes) != 8 {
		t.Fatalf("List = %d notes, %v", len(page.Notes), err)
	}

	// infinity: pgx refuses to scan it into time.Time; so must List.
	if _, err := pool.Exec(ctx, "INSERT INTO notes (title, created_at) VALUES ('inf', 'infinity')"); err != nil {
		t.Fatal(err)
	}
	if _, err := New(pool).List(ctx, nil, 100); err == nil {
		t.Error("List with an infinite created_at: no error")
	}
}
