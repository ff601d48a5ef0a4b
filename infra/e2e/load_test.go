//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// load drives a mixed workload (three list GETs to one POST) at a fixed concurrency against the
// API through nginx and records every failure and every acknowledged note.
type load struct {
	notesURL string // the collection, the stack's apiUrl output
	runID    string // makes titles and idempotency keys unique across runs
	client   *http.Client

	mu        sync.Mutex
	latencies []time.Duration
	failures  []string
	failed    []failedRequest
	acked     map[int64]notePayload
	replayed  int // POSTs answered as a replay of an earlier attempt (Idempotent-Replayed)
	// plain: a client like wrk or curl, which sends no Idempotency-Key and never retries
	// (see newPlainLoad).
	plain bool
}

// failedRequest is when a request was sent and failed, and how: its status, or 0 for a
// transport error.
type failedRequest struct {
	sent   time.Time
	at     time.Time
	method string
	status int
}

type notePayload struct {
	Title string `json:"title"`
	Body  string `json:"body"`
}

func newLoad(notesURL string, concurrency int) *load {
	return &load{
		notesURL: notesURL,
		runID:    fmt.Sprintf("%x", time.Now().UnixNano()),
		client: &http.Client{
			Timeout:   15 * time.Second,
			Transport: &http.Transport{MaxIdleConnsPerHost: concurrency, MaxConnsPerHost: concurrency},
		},
		acked: map[int64]notePayload{},
	}
}

// run blocks until ctx is done, with concurrency workers issuing requests back to back.
func (l *load) run(ctx context.Context, concurrency int) {
	var wg sync.WaitGroup
	for w := range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				if i%4 == 0 {
					l.post(ctx, fmt.Sprintf("load %s w%d n%d", l.runID, w, i))
				} else {
					l.list(ctx)
				}
			}
		}()
	}
	wg.Wait()
}

// record counts a request that started at start: a success when failure is empty, else a
// failure of method with status (0: no HTTP answer).
func (l *load) record(start time.Time, method string, status int, failure string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.latencies = append(l.latencies, time.Since(start))
	if failure != "" {
		l.failures = append(l.failures, failure)
		l.failed = append(l.failed, failedRequest{sent: start, at: time.Now(), method: method, status: status})
	}
}

func (l *load) list(ctx context.Context) {
	start := time.Now()
	req, _ := http.NewRequest(http.MethodGet, l.notesURL+"?limit=20", nil)
	if l.plain {
		// A body without GetBody makes the request non-replayable: Go's Transport does not
		// resend it on a connection the server closed, so every such error counts.
		req.Body = io.NopCloser(strings.NewReader(""))
	}
	resp, err := l.client.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			l.record(start, http.MethodGet, 0, "GET: "+err.Error())
		}
		return
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	var notes []map[string]any
	switch {
	case err != nil:
		l.record(start, http.MethodGet, 0, "GET body: "+err.Error())
	case resp.StatusCode != http.StatusOK:
		l.record(start, http.MethodGet, resp.StatusCode, fmt.Sprintf("GET: status %d: %.200s", resp.StatusCode, body))
	case json.Unmarshal(body, &notes) != nil:
		l.record(start, http.MethodGet, resp.StatusCode, fmt.Sprintf("GET: not a JSON list: %.200s", body))
	default:
		l.record(start, "", 0, "")
	}
}

func (l *load) post(ctx context.Context, title string) {
	note := notePayload{Title: title, Body: "written during the deploy at " + time.Now().Format(time.RFC3339Nano)}
	payload, _ := json.Marshal(note)
	start := time.Now()
	req, _ := http.NewRequest(http.MethodPost, l.notesURL, bytes.NewReader(payload))
	req.Header.Set("Content-Type", "application/json")
	// A unique key per note makes the POST safe to retry, so Go's Transport resends it when Nginx
	// closed the keep-alive connection under it (old workers do on reload); the service answers a
	// replay with the first note's id instead of storing a second one.
	if !l.plain {
		req.Header.Set("Idempotency-Key", "e2e-"+strings.ReplaceAll(title, " ", "_"))
	}
	resp, err := l.client.Do(req)
	if err != nil {
		// A POST cut off by the end of the run is not a failure of the deploy; anything else is.
		if ctx.Err() == nil {
			l.record(start, http.MethodPost, 0, "POST: "+err.Error())
		}
		return
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	var created struct {
		ID int64 `json:"id"`
	}
	switch {
	case err != nil:
		l.record(start, http.MethodPost, 0, "POST body: "+err.Error())
	case resp.StatusCode != http.StatusCreated:
		l.record(start, http.MethodPost, resp.StatusCode, fmt.Sprintf("POST: status %d: %.200s", resp.StatusCode, body))
	case json.Unmarshal(body, &created) != nil || created.ID == 0:
		l.record(start, http.MethodPost, resp.StatusCode, fmt.Sprintf("POST: bad body %.200s", body))
	default:
		l.record(start, "", 0, "")
		l.mu.Lock()
		l.acked[created.ID] = note
		if resp.Header.Get("Idempotent-Replayed") == "true" {
			l.replayed++
		}
		l.mu.Unlock()
	}
}

// checkFailures fails the test for every failed request (the first 20 named) and when no POST
// was acknowledged.
func (l *load) checkFailures(t *testing.T) {
	t.Helper()
	for i, f := range l.failures {
		if i == 20 {
			t.Errorf("... and %d more", len(l.failures)-20)
			break
		}
		t.Errorf("failed request: %s", f)
	}
	if len(l.acked) == 0 {
		t.Error("no POST was acknowledged under load")
	}
}

// report summarises the run for the test log.
func (l *load) report(t *testing.T, label string) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	lat := slices.Clone(l.latencies)
	slices.Sort(lat)
	pct := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(p*float64(len(lat))))]
	}
	t.Logf("%s: %d requests, %d failed, %d notes acknowledged (%d after a retry); latency p50 %v p99 %v max %v",
		label, len(lat), len(l.failures), len(l.acked), l.replayed, pct(0.50), pct(0.99), pct(1))
}

// verifyAcked reads every acknowledged note back and compares it with what was sent.
func (l *load) verifyAcked(t *testing.T) {
	t.Helper()
	for id, want := range l.acked {
		got := getNote(t, l.client, fmt.Sprintf("%s/%d", l.notesURL, id))
		if got.Title != want.Title || got.Body != want.Body {
			t.Errorf("note %d reads back as %+v, acknowledged %+v", id, got, want)
		}
	}
}

func getNote(t *testing.T, c *http.Client, url string) notePayload {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d: %s", url, resp.StatusCode, body)
	}
	var n notePayload
	if err := json.Unmarshal(body, &n); err != nil {
		t.Fatalf("GET %s: %v: %s", url, err, body)
	}
	return n
}
