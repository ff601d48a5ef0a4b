//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"text/tabwriter"
	"time"
)

// The front-door fuzz run: fuzzRequests generated requests, sent as raw bytes over fuzzConns
// keep-alive connections to nginx's published port (Go's client would normalise the paths and
// refuse the malformed headers and framings the run is about), with a database outage in the
// middle. Each request is a function of the seed and its index alone, so a failure names both
// and NOTES_FUZZ_SEED replays the run.
const (
	fuzzRequests = 100_000
	fuzzConns    = 48
	fuzzSeedEnv  = "NOTES_FUZZ_SEED"
	// fuzzOutageAt is the share of the requests sent when Postgres is killed.
	fuzzOutageAt = 0.4
	// fuzzOutage is how long Postgres stays down.
	fuzzOutage = 3 * time.Second
)

// fuzzEnv is what the generator knows about the stack.
type fuzzEnv struct {
	seed  uint64
	host  string // nginx's published address, the Host of the requests
	token string // a valid API token
	// maxID is the newest note before the run: PATCH and DELETE with the token only touch notes
	// up to it (or none), never a write the run acknowledged and reads back.
	maxID int64
}

// fuzzReq is one generated request and what a correct stack may answer.
type fuzzReq struct {
	family string
	method string // as sent, possibly not a valid token
	wire   []byte
	// clean: exactly one well-framed request, so its connection stays usable and nginx must
	// answer it. Other requests get a connection of their own, half-closed after the bytes, and
	// may go unanswered.
	clean bool
	// want lists the statuses a correct stack answers (besides 503 during the outage); empty
	// means any status below 500.
	want []int
	// allow is a 5xx that is the correct answer to what was sent: 501 for a transfer coding
	// nginx does not implement, 505 for an HTTP major version above 1.
	allow int
	// note is set for a POST to /api/notes whose body the service reads unambiguously: a 201
	// is an acknowledged write of what encoding/json makes of these bytes. A 201 to a POST of
	// the collection without it (ambiguous framing) is a failure.
	note []byte
	post bool
}

// fuzzResult is what came back for one request.
type fuzzResult struct {
	sent, done time.Time
	status     int   // of the first response; 0: none
	statuses   []int // every response read (a request can smuggle a second)
	problem    string
	id         int64 // the id of a 201
}

// frontDoorFuzz runs the fuzz against a deployed containers-engine stack and checks it: no 5xx
// but 503 during the database outage (and the 501/505 HTTP prescribes), no 502 or 504 at all,
// /metrics never served, no replica or nginx restart, every acknowledged write read back, and
// the stack answering normally afterwards. It prints the counts by status and method.
func frontDoorFuzz(t *testing.T, s *stack, token string) {
	seed := fuzzSeed(t)
	t.Logf("front-door fuzz: seed %d (replay with %s=%d)", seed, fuzzSeedEnv, seed)
	base, err := url.Parse(s.output("url"))
	if err != nil {
		t.Fatal(err)
	}
	api := s.output("apiUrl")
	env := fuzzEnv{seed: seed, host: base.Host, token: token, maxID: newestNoteID(t, api)}
	ft := containersFaults(s)
	watched := append(s.stringsOutput("replicaNames"), s.output("nginxContainer"))
	startsBefore := containerStarts(t, watched)

	results := make([]fuzzResult, fuzzRequests)
	reqs := make([]*fuzzReq, fuzzRequests)
	var next atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel() // a Fatal below stops the workers before the stack goes away
	start := time.Now()
	for range fuzzConns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := &fuzzWorker{addr: base.Host}
			defer w.close()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= fuzzRequests {
					return
				}
				q := genFuzz(env, i)
				results[i] = w.send(q)
				q.wire = nil // regenerated for a failure's message
				reqs[i] = q
			}
		}()
	}

	// The outage, in the test's goroutine so that its helpers may fail the test.
	for next.Load() < int64(fuzzOutageAt*fuzzRequests) {
		time.Sleep(20 * time.Millisecond)
	}
	outageFrom := next.Load()
	outageStart := time.Now()
	ft.stopDatabase(t)
	time.Sleep(fuzzOutage)
	ft.startDatabase(t)
	waitFor(t, 2*time.Minute, "Postgres to accept connections", func() bool { return ft.databaseReady(t) })
	// Repaired once every replica answers from the database again: 10 list requests in a row
	// through nginx (round robin over 2 replicas). /readyz caches its answer for a second.
	outageEnd := waitRecovered(t, api, 10).Add(time.Second)
	t.Logf("database outage: killed at request %d, %.1f s until the API answered again", outageFrom, outageEnd.Sub(outageStart).Seconds())
	wg.Wait()
	elapsed := time.Since(start)
	t.Logf("front-door fuzz: %d requests over %d connections in %.1f s", fuzzRequests, fuzzConns, elapsed.Seconds())

	acked := map[int64]notePayload{}
	// Failures by kind (the family and the format), with the first few of each in full.
	var kinds []string
	failures := map[string][]string{}
	fail := func(i int, format string, args ...any) {
		kind := reqs[i].family + ": " + format
		if failures[kind] == nil {
			kinds = append(kinds, kind)
		}
		if len(failures[kind]) < 3 {
			failures[kind] = append(failures[kind], fmt.Sprintf("request %d (seed %d): %s\n    sent: %s", i, seed,
				fmt.Sprintf(format, args...), truncateQuoted(genFuzz(env, i).wire, 300)))
		} else {
			failures[kind] = append(failures[kind], "")
		}
	}
	in503Window := func(r fuzzResult) bool { return !r.done.Before(outageStart) && !r.sent.After(outageEnd) }
	seen503 := 0
	counts := map[string]map[int]int{}
	for i, r := range results {
		q := reqs[i]
		if counts[methodLabel(q.method)] == nil {
			counts[methodLabel(q.method)] = map[int]int{}
		}
		counts[methodLabel(q.method)][r.status]++
		if r.problem != "" {
			fail(i, "%s", r.problem)
		}
		if r.status == 0 && q.clean {
			fail(i, "no answer from nginx to a well-framed request")
		}
		for _, st := range r.statuses {
			switch {
			case st == http.StatusBadGateway || st == http.StatusGatewayTimeout:
				fail(i, "status %d", st)
			case st == http.StatusServiceUnavailable && in503Window(r):
				seen503++
			case st >= 500 && st != q.allow:
				fail(i, "status %d (outage from %s to %s, request sent %s)", st,
					outageStart.Format("15:04:05.000"), outageEnd.Format("15:04:05.000"), r.sent.Format("15:04:05.000"))
			}
		}
		if len(q.want) > 0 && r.status != 0 && !slices.Contains(q.want, r.status) &&
			!(r.status == http.StatusServiceUnavailable && in503Window(r)) && r.status < 500 {
			fail(i, "status %d, want one of %v", r.status, q.want)
		}
		if r.status == http.StatusCreated && q.post {
			if q.note == nil {
				fail(i, "201 for a POST whose body is ambiguous: nginx must refuse that framing")
				continue
			}
			want, err := expectedNote(q.note)
			if err != nil {
				fail(i, "201 for a body encoding/json refuses (%v)", err)
				continue
			}
			if r.id <= 0 {
				fail(i, "201 without an id")
				continue
			}
			if prev, ok := acked[r.id]; ok && prev != want {
				fail(i, "201 with id %d, acknowledged before as %+v, now as %+v", r.id, prev, want)
			}
			acked[r.id] = want
		}
	}
	t.Log("front-door fuzz: counts by method and status (0: no HTTP answer)\n" + fuzzTable(counts))
	for _, kind := range kinds {
		examples := slices.DeleteFunc(slices.Clone(failures[kind]), func(s string) bool { return s == "" })
		t.Errorf("%d failed (%s), for example:\n%s", len(failures[kind]), kind, strings.Join(examples, "\n"))
	}
	if seen503 == 0 {
		t.Error("no request got a 503 during the database outage: the outage did not reach the API")
	}

	t.Run("no restarts", func(t *testing.T) {
		after := containerStarts(t, watched)
		for name, before := range startsBefore {
			if after[name] != before {
				t.Errorf("%s: restart count and start time %q before the fuzz run, %q after", name, before, after[name])
			}
		}
	})
	t.Run("acknowledged writes read back", func(t *testing.T) {
		l := newLoad(api, 4)
		l.acked = acked
		if lost := lostAcked(t, l); lost > 0 {
			t.Errorf("%d of %d acknowledged notes lost or changed", lost, len(acked))
		}
		t.Logf("%d acknowledged notes read back", len(acked))
		if len(acked) == 0 {
			t.Error("the run acknowledged no write")
		}
	})
	t.Run("answers normally afterwards", func(t *testing.T) {
		client := &http.Client{Timeout: 10 * time.Second}
		for _, key := range []string{"livenessUrl", "healthUrl", "apiUrl"} {
			expectStatus(t, client, s.output(key), http.StatusOK)
		}
		l := newLoad(api, 1)
		l.post(context.Background(), "after the front-door fuzz "+strconv.FormatUint(seed, 10))
		if len(l.failures) > 0 || len(l.acked) != 1 {
			t.Fatalf("creating a note after the fuzz run: %v", l.failures)
		}
		l.verifyAcked(t)
	})
}

func fuzzSeed(t *testing.T) uint64 {
	t.Helper()
	if v := os.Getenv(fuzzSeedEnv); v != "" {
		seed, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: want the unsigned integer a run printed: %v", fuzzSeedEnv, v, err)
		}
		return seed
	}
	var b [8]byte
	if _, err := crand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return binary.LittleEndian.Uint64(b[:])
}

// newestNoteID is the id of the newest note (0: none).
func newestNoteID(t *testing.T, api string) int64 {
	t.Helper()
	resp, err := http.Get(api + "?limit=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list []struct {
		ID int64 `json:"id"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s?limit=1: status %d, %v", api, resp.StatusCode, err)
	}
	if len(list) == 0 {
		return 0
	}
	return list[0].ID
}

// waitRecovered returns when n list requests in a row through nginx got 200.
func waitRecovered(t *testing.T, api string, n int) time.Time {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	ok := 0
	return waitFor(t, 2*time.Minute, "the API to answer from the database again", func() bool {
		resp, err := client.Get(api + "?limit=1")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		if err != nil || resp.StatusCode != http.StatusOK {
			ok = 0
			return false
		}
		ok++
		return ok >= n
	})
}

// containerStarts is each container's restart count and start time.
func containerStarts(t *testing.T, names []string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, name := range names {
		m[name] = docker(t, "inspect", "-f", "{{.RestartCount}} {{.State.StartedAt}}", name)
	}
	return m
}

// expectedNote is the note a standard decoder reads from a POST body, with the service's
// default title: what a 201 must have stored.
func expectedNote(body []byte) (notePayload, error) {
	var in struct{ Title, Body *string }
	if err := json.Unmarshal(body, &in); err != nil {
		return notePayload{}, err
	}
	n := notePayload{Title: "Untitled"}
	if in.Title != nil && strings.TrimSpace(*in.Title) != "" {
		n.Title = *in.Title
	}
	if in.Body != nil {
		n.Body = *in.Body
	}
	return n, nil
}

func methodLabel(m string) string {
	switch m {
	case "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT":
		return m
	}
	return "other"
}

// fuzzTable formats the counts as methods by statuses, with totals.
func fuzzTable(counts map[string]map[int]int) string {
	var statuses []int
	total := map[int]int{}
	for _, byStatus := range counts {
		for st, n := range byStatus {
			if total[st] == 0 {
				statuses = append(statuses, st)
			}
			total[st] += n
		}
	}
	slices.Sort(statuses)
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(w, "method\t")
	for _, st := range statuses {
		fmt.Fprintf(w, "%d\t", st)
	}
	fmt.Fprintln(w, "all\t")
	row := func(name string, byStatus map[int]int) {
		fmt.Fprintf(w, "%s\t", name)
		sum := 0
		for _, st := range statuses {
			fmt.Fprintf(w, "%d\t", byStatus[st])
			sum += byStatus[st]
		}
		fmt.Fprintf(w, "%d\t\n", sum)
	}
	for _, m := range []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT", "other"} {
		if counts[m] != nil {
			row(m, counts[m])
		}
	}
	row("all", total)
	w.Flush()
	return b.String()
}

func truncateQuoted(b []byte, n int) string {
	if len(b) > n {
		return strconv.Quote(string(b[:n])) + fmt.Sprintf("... (%d bytes)", len(b))
	}
	return strconv.Quote(string(b))
}

// fuzzWorker sends requests over one keep-alive connection, redialled when nginx closes it.
type fuzzWorker struct {
	addr   string
	conn   net.Conn
	br     *bufio.Reader
	reused bool // the connection has carried a request already
}

func (w *fuzzWorker) close() {
	if w.conn != nil {
		w.conn.Close()
		w.conn = nil
	}
}

// fuzzTimeout bounds one request: nginx and the service answer in far less, also during the
// outage (the service answers 503 as soon as Postgres refuses).
const fuzzTimeout = 30 * time.Second

func (w *fuzzWorker) send(q *fuzzReq) fuzzResult {
	sent := time.Now()
	var r fuzzResult
	if q.clean {
		r = w.exchange(q)
	} else {
		r = sendAlone(w.addr, q)
	}
	r.sent, r.done = sent, time.Now()
	return r
}

func (w *fuzzWorker) exchange(q *fuzzReq) fuzzResult {
	var r fuzzResult
	for attempt := 0; ; attempt++ {
		if w.conn == nil {
			c, err := net.DialTimeout("tcp", w.addr, 5*time.Second)
			if err != nil {
				r.problem = "dial: " + err.Error()
				return r
			}
			w.conn, w.br, w.reused = c, bufio.NewReader(c), false
		}
		reused := w.reused
		w.reused = true
		w.conn.SetDeadline(time.Now().Add(fuzzTimeout))
		_, werr := w.conn.Write(q.wire)
		resp, body, err := readResponse(w.br, q.method)
		if errors.Is(err, errCutOff) {
			w.close()
			r.status, r.statuses = resp.StatusCode, []int{resp.StatusCode}
			r.problem = err.Error()
			return r
		}
		if err != nil {
			w.close()
			// nginx closes an idle keep-alive connection when it likes (keepalive_timeout,
			// keepalive_requests): a request that got no byte back on a reused connection is
			// sent once more on a new one, as any client does.
			if attempt == 0 && reused && errorBeforeAnyByte(err) {
				continue
			}
			r.problem = fmt.Sprintf("reading the answer: %v (write: %v)", err, werr)
			return r
		}
		r.status = resp.StatusCode
		r.statuses = []int{resp.StatusCode}
		r.problem = checkResponse(resp, body)
		if resp.StatusCode == http.StatusCreated {
			r.id = createdID(body)
		}
		if resp.Close {
			w.close()
		}
		return r
	}
}

func errorBeforeAnyByte(err error) bool {
	return err == io.EOF || strings.Contains(err.Error(), "connection reset")
}

// sentinel follows a request sent alone: nginx answers it itself and then closes, so the reader
// knows every answer has come without half-closing the connection (nginx takes a half-close
// for a client that went away and drops a proxied request with 499) and without waiting for a
// timeout. A framing that swallows it as body bytes ends in an error and a close as well.
const sentinel = "GET /nginx-health HTTP/1.1\r\nHost: sentinel\r\nConnection: close\r\n\r\n"

// sendAlone sends q and the sentinel on a connection of its own and reads every response until
// nginx closes: a request that smuggles a second one gets two answers, and each is checked.
func sendAlone(addr string, q *fuzzReq) fuzzResult {
	var r fuzzResult
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		r.problem = "dial: " + err.Error()
		return r
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(fuzzTimeout))
	written := make(chan struct{})
	go func() {
		defer close(written)
		// nginx may answer and close before it read everything: the write error is expected.
		if _, err := c.Write(q.wire); err == nil {
			c.Write([]byte(sentinel))
		}
	}()
	raw, _ := io.ReadAll(io.LimitReader(c, 8<<20))
	c.Close()
	<-written
	if leaksMetrics(raw) {
		r.problem = "the answer holds Prometheus metrics: " + truncateQuoted(raw, 200)
	}
	br := bufio.NewReader(bytes.NewReader(raw))
	for {
		resp, body, err := readResponse(br, q.method)
		if err != nil {
			break
		}
		if isSentinelAnswer(resp, body) {
			break
		}
		if len(r.statuses) == 0 {
			r.status = resp.StatusCode
			if resp.StatusCode == http.StatusCreated {
				r.id = createdID(body)
			}
		}
		r.statuses = append(r.statuses, resp.StatusCode)
		if p := checkResponse(resp, body); p != "" && r.problem == "" {
			r.problem = p
		}
	}
	return r
}

// isSentinelAnswer tells nginx's own health answer (no revision header: the service did not
// see it) from the answers to the request.
func isSentinelAnswer(resp *http.Response, body []byte) bool {
	return resp.StatusCode == http.StatusOK && resp.Header.Get("X-Notes-Revision") == "" &&
		strings.TrimSpace(string(body)) == `{"status":"ok"}`
}

// errCutOff is a response whose status line came and whose body did not.
var errCutOff = errors.New("answer cut off")

// readResponse reads the final response to a request of method and up to 1 MiB of its body
// (the rest is discarded, so the connection stays in step).
func readResponse(br *bufio.Reader, method string) (*http.Response, []byte, error) {
	for {
		resp, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			return nil, nil, err
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
		}
		resp.Body.Close()
		if err != nil {
			return resp, nil, fmt.Errorf("%w: body of the %d cut off: %w", errCutOff, resp.StatusCode, err)
		}
		if resp.StatusCode >= 100 && resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
			continue // 100 Continue: the answer follows
		}
		return resp, body, nil
	}
}

var requestIDPattern = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

// checkResponse returns what is wrong with a response whatever the request was: Prometheus
// metrics in it, or an X-Request-ID that could carry a client's bytes into other logs.
func checkResponse(resp *http.Response, body []byte) string {
	if resp.Header.Get("Content-Encoding") == "gzip" {
		if zr, err := gzip.NewReader(bytes.NewReader(body)); err == nil {
			if plain, err := io.ReadAll(zr); err == nil {
				body = plain
			}
		}
	}
	ct := resp.Header.Get("Content-Type")
	if leaksMetrics(body) || strings.Contains(ct, "version=0.0.4") || strings.Contains(ct, "openmetrics") {
		return fmt.Sprintf("status %d with Prometheus metrics (%s): %s", resp.StatusCode, ct, truncateQuoted(body, 200))
	}
	if ids := resp.Header.Values("X-Request-ID"); len(ids) > 1 || (len(ids) == 1 && !requestIDPattern.MatchString(ids[0])) {
		return fmt.Sprintf("status %d with X-Request-ID %q", resp.StatusCode, ids)
	}
	return ""
}

func leaksMetrics(b []byte) bool {
	for _, m := range []string{"# HELP go_", "# TYPE go_", "# HELP http_requests_total", "http_request_duration_seconds_bucket"} {
		if bytes.Contains(b, []byte(m)) {
			return true
		}
	}
	return false
}

func createdID(body []byte) int64 {
	var c struct {
		ID int64 `json:"id"`
	}
	json.Unmarshal(body, &c)
	return c.ID
}
