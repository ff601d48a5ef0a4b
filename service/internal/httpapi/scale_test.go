package httpapi_test

import (
	"context"
	"encoding/json"
	"flag"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/notes-stack/notes/service/internal/postgres"
)

var scaleMax = flag.Int("scale.max", 10_000, "BenchmarkListScale: the largest table to seed (10000, 1000000 or 10000000; 10^7 takes minutes)")

// BenchmarkListScale measures GET /api/notes (in process, through Echo, pgx and a real Postgres)
// over tables of 10^4, 10^6 and 10^7 notes seeded with COPY: the first page and a page 10^5
// notes deep (half the table for 10^4), reached by following the cursor. Keyset pagination
// should make both flat in the table size. Each iteration is one request of each kind; run it
// with a fixed count and report the percentiles:
//
//	go test ./service/internal/httpapi -run '^$' -bench ListScale -benchtime 5000x -scale.max 10000000
func BenchmarkListScale(b *testing.B) {
	for _, n := range []int{10_000, 1_000_000, 10_000_000} {
		if n > *scaleMax {
			continue
		}
		// Seeded once: the framework runs the sub-benchmark more than once (b.N = 1 first).
		e := newEnv(b)
		start := time.Now()
		if _, err := postgres.Seed(context.Background(), e.pool, n); err != nil {
			b.Fatal(err)
		}
		// The checkpoint writes the seed out now rather than during the measurement.
		for _, stmt := range []string{"VACUUM ANALYZE notes", "CHECKPOINT"} {
			if _, err := e.pool.Exec(context.Background(), stmt); err != nil {
				b.Fatalf("%s: %v", stmt, err)
			}
		}
		depth := min(100_000, n/2)
		deep := walk(b, e, depth)
		seeded := time.Since(start)
		logged := false
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			if !logged { // the parent's log is not printed
				b.Logf("seeded %d notes with COPY and walked %d deep in %v", n, depth, seeded.Round(time.Second))
				explain(b, e, n, depth)
				logged = true
			}
			first := make([]time.Duration, 0, b.N)
			far := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				first = append(first, get(b, e, "/api/notes"))
				far = append(far, get(b, e, deep))
			}
			b.StopTimer()
			p := func(d []time.Duration, q float64) float64 {
				slices.Sort(d)
				return float64(d[int(q*float64(len(d)-1))].Microseconds())
			}
			b.ReportMetric(p(first, 0.5), "first-p50-µs")
			b.ReportMetric(p(first, 0.99), "first-p99-µs")
			b.ReportMetric(p(far, 0.5), "deep-p50-µs")
			b.ReportMetric(p(far, 0.99), "deep-p99-µs")
			b.Logf("%d notes: first page p50 %.0f µs p99 %.0f µs; page %d deep p50 %.0f µs p99 %.0f µs (%d requests each)",
				n, p(first, 0.5), p(first, 0.99), depth, p(far, 0.5), p(far, 0.99), b.N)
		})
	}
}

var nextLink = regexp.MustCompile(`<([^>]+)>; rel="next"`)

// walk follows the Link header from the first page, 200 notes a page, until depth notes were
// passed, and returns the URL of the next page (50 notes, the default).
func walk(b *testing.B, e *env, depth int) string {
	b.Helper()
	url := "/api/notes?limit=200"
	for seen := 0; seen < depth; seen += 200 {
		rec := httptest.NewRecorder()
		e.h.ServeHTTP(rec, httptest.NewRequest("GET", url, nil))
		m := nextLink.FindStringSubmatch(rec.Header().Get("Link"))
		if rec.Code != 200 || m == nil {
			b.Fatalf("GET %s = %d, Link %q", url, rec.Code, rec.Header().Get("Link"))
		}
		url = m[1]
	}
	return regexp.MustCompile(`limit=200`).ReplaceAllString(url, "limit=50")
}

func get(b *testing.B, e *env, url string) time.Duration {
	start := time.Now()
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, httptest.NewRequest("GET", url, nil))
	d := time.Since(start)
	var page []json.RawMessage
	if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &page) != nil || len(page) != 50 {
		b.Fatalf("GET %s = %d, %d notes", url, rec.Code, len(page))
	}
	return d
}

// explain logs the plan of the first page and of the deep one (the service's statements, by the
// deep page's last row): keyset pagination is an index scan that reads about the same number of
// buffers whatever the table size and the depth, which OFFSET would not.
func explain(b *testing.B, e *env, n, depth int) {
	b.Helper()
	ctx := context.Background()
	var at time.Time
	var id int64
	if err := e.pool.QueryRow(ctx, "SELECT created_at, id FROM notes ORDER BY created_at DESC, id DESC OFFSET $1 LIMIT 1", depth-1).Scan(&at, &id); err != nil {
		b.Fatal(err)
	}
	for name, q := range map[string][]any{
		"first page": {"SELECT id, title, body, created_at FROM notes ORDER BY created_at DESC, id DESC LIMIT 51"},
		"deep page":  {"SELECT id, title, body, created_at FROM notes WHERE (created_at, id) < ($1, $2) ORDER BY created_at DESC, id DESC LIMIT 51", at, id},
	} {
		rows, err := e.pool.Query(ctx, "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF) "+q[0].(string), q[1:]...)
		if err != nil {
			b.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				b.Fatal(err)
			}
			plan = append(plan, line)
		}
		if err := rows.Err(); err != nil {
			b.Fatal(err)
		}
		b.Logf("%d notes, %s:\n%s", n, name, strings.Join(plan, "\n"))
	}
}
