package httpapi_test

import (
	"bytes"
	"context"
	"net/http/httptest"
	"testing"

	"github.com/notes-stack/notes/service/internal/postgres"
)

// BenchmarkListNotes measures GET /api/notes (50 notes) in process, for
// profiling: go test ./service/internal/httpapi -run '^$' -bench ListNotes -cpuprofile cpu.out
func BenchmarkListNotes(b *testing.B) {
	e := newEnv(b)
	if _, err := postgres.Seed(context.Background(), e.pool, 1000); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			rec := httptest.NewRecorder()
			e.h.ServeHTTP(rec, httptest.NewRequest("GET", "/api/notes", nil))
			if rec.Code != 200 {
				b.Fatal(rec.Code)
			}
		}
	})
}

// BenchmarkCreateNote measures POST /api/notes in process.
func BenchmarkCreateNote(b *testing.B) {
	e := newEnv(b)
	body := []byte(`{"title":"bench note","body":"written by the benchmark"}`)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			rec := httptest.NewRecorder()
			req := httptest.NewRequest("POST", "/api/notes", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			e.h.ServeHTTP(rec, req)
			if rec.Code != 201 {
				b.Fatal(rec.Code)
			}
		}
	})
}
