//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"
)

// readyzFlood hammers /readyz through nginx's published port (16 clients, no other load) and
// counts the transactions Postgres committed on the stack's database meanwhile
// (pg_stat_database.xact_commit): each replica runs at most one check a second however many
// ask, so /readyz cannot be used to flood the database. The count is an upper bound of the
// checks: it includes the psql that reads it and anything else that ran.
func readyzFlood(t *testing.T, s *stack, replicas int) faultRow {
	const clients, flood = 16, 15 * time.Second
	db := s.output("databaseContainer")
	commits := func() int {
		t.Helper()
		out := docker(t, "exec", db, "psql", "-X", "-U", "notes", "-d", "notes", "-At", "-c",
			"SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
		n, err := strconv.Atoi(out)
		if err != nil {
			t.Fatalf("xact_commit: %q", out)
		}
		return n
	}
	// A backend that went idle reports its counts within 10 s (PGSTAT_IDLE_INTERVAL): wait that
	// long before each reading, so the earlier load is in the first and the flood in the second.
	const statsDelay = 11 * time.Second
	row := faultRow{engine: "containers", clients: clients, failed: map[string]int{}}
	t.Run("readyz flood", func(t *testing.T) {
		time.Sleep(statsDelay)
		before := commits()
		url := s.output("url") + "/readyz"
		client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
		ctx, cancel := context.WithTimeout(context.Background(), flood)
		defer cancel()
		var mu sync.Mutex
		var wg sync.WaitGroup
		start := time.Now()
		for range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
					resp, err := client.Do(req)
					status := 0
					if err == nil {
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						status = resp.StatusCode
					} else if ctx.Err() != nil {
						return
					}
					mu.Lock()
					row.requests++
					if status != http.StatusOK {
						row.failed[fmt.Sprintf("GET %d", status)]++
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		elapsed := time.Since(start)
		time.Sleep(statsDelay)
		delta := commits() - before
		perReplica := float64(delta) / elapsed.Seconds() / float64(replicas)
		row.fault = fmt.Sprintf("/readyz flood for %.0f s: %d commits on the database (%.1f/s per replica)", elapsed.Seconds(), delta, perReplica)
		row.lasted = elapsed
		t.Logf("%d /readyz requests through nginx in %v (%v not 200), %d transactions committed on the database: %.1f per second per replica",
			row.requests, elapsed.Round(100*time.Millisecond), row.failed, delta, perReplica)
		if len(row.failed) > 0 {
			t.Errorf("/readyz answered other than 200 under the flood: %v", row.failed)
		}
		// One check a second per replica, and the odd transaction of something else.
		if perReplica > 3 {
			t.Errorf("%.1f commits per second per replica under a /readyz flood: the check is not rate-limited", perReplica)
		}
	})
	return row
}
