package httpapi_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/notes-stack/notes/service/internal/httpapi"
	"github.com/notes-stack/notes/service/internal/notes"
	"github.com/notes-stack/notes/service/internal/postgres"
)

// countingStore is the real Postgres store that counts its pings.
type countingStore struct {
	notes.Store
	pings atomic.Int64
}

func (s *countingStore) Ping(ctx context.Context) error {
	s.pings.Add(1)
	return s.Store.Ping(ctx)
}

// TestReadyzCannotFloodTheDatabase: however many /readyz requests arrive at
// once and in a row, the database sees one SELECT 1 per second at most, and
// the answers stay right.
func TestReadyzCannotFloodTheDatabase(t *testing.T) {
	t.Parallel()
	store := &countingStore{Store: postgres.New(migratedPool(t))}
	srv := httptest.NewServer(httpapi.New(httpapi.Options{Store: store}))
	t.Cleanup(srv.Close)

	start := time.Now()
	var wg sync.WaitGroup
	var notReady atomic.Int64
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				res, err := srv.Client().Get(srv.URL + "/readyz")
				if err != nil {
					t.Error(err)
					return
				}
				res.Body.Close()
				if res.StatusCode != http.StatusOK {
					notReady.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if n := notReady.Load(); n > 0 {
		t.Errorf("%d of 800 /readyz answers were not 200", n)
	}
	// One check per started second of the run, plus the first.
	if got, limit := store.pings.Load(), int64(elapsed/time.Second)+2; got > limit {
		t.Errorf("800 /readyz requests in %v made %d database pings, want at most %d", elapsed, got, limit)
	}
	t.Logf("800 /readyz requests in %v: %d database pings", elapsed, store.pings.Load())
}
