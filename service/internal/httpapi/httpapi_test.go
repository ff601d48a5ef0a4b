package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/notes-stack/notes/internal/testing/pgtest"
	"github.com/notes-stack/notes/internal/testing/testutil"
	"github.com/notes-stack/notes/service/internal/httpapi"
	"github.com/notes-stack/notes/service/internal/notes"
	"github.com/notes-stack/notes/service/internal/postgres"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const maxBody = 4096

// testToken is the API token of newEnv's handler; env.do sends it unless the
// test sets its own Authorization header ("" sends none).
const testToken = "test-token-0123456789abcdef"

type env struct {
	h    http.Handler
	srv  *httptest.Server
	pool *pgxpool.Pool
	logs *testutil.SyncBuffer
}

// migratedPool gives the test a fresh, migrated database.
func migratedPool(tb testing.TB) *pgxpool.Pool {
	tb.Helper()
	pool, err := postgres.NewPool(context.Background(), pgtest.NewMigratedDatabase(tb), postgres.PoolOptions{MaxConns: 8})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pool.Close)
	return pool
}

func newEnv(tb testing.TB) *env {
	tb.Helper()
	return newEnvWith(tb, func(*httpapi.Options) {})
}

// newEnvWith is newEnv with options changed by set.
func newEnvWith(tb testing.TB, set func(*httpapi.Options)) *env {
	tb.Helper()
	pool := migratedPool(tb)
	logs := &testutil.SyncBuffer{}
	reg := prometheus.NewRegistry()
	reg.MustRegister(postgres.NewPoolCollector(pool))
	o := httpapi.Options{
		Store:        postgres.New(pool),
		Logger:       slog.New(slog.NewJSONHandler(logs, nil)),
		MaxBodyBytes: maxBody,
		Registry:     reg,
		Tokens:       httpapi.NewTokens([]string{testToken}),
	}
	set(&o)
	h := httpapi.New(o)
	srv := httptest.NewServer(h)
	tb.Cleanup(srv.Close)
	return &env{h: h, srv: srv, pool: pool, logs: logs}
}

type resp struct {
	status int
	header http.Header
	body   []byte
}

func (e *env) do(tb testing.TB, method, path, contentType string, body []byte, hdr ...string) resp {
	tb.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
		if hdr[i+1] == "" {
			req.Header.Del(hdr[i])
		}
	}
	res, err := e.srv.Client().Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{status: res.StatusCode, header: res.Header, body: b}
}

func (e *env) create(tb testing.TB, title, body string) int64 {
	tb.Helper()
	b, _ := json.Marshal(map[string]string{"title": title, "body": body})
	r := e.do(tb, "POST", "/api/notes", "application/json", b)
	if r.status != 201 {
		tb.Fatalf("create: %d %s", r.status, r.body)
	}
	var out struct{ ID int64 }
	if err := json.Unmarshal(r.body, &out); err != nil || out.ID == 0 {
		tb.Fatalf("create: bad body %s", r.body)
	}
	return out.ID
}

type noteOut struct {
	ID        int64  `json:"id"`
	Title     string `json:"title"`
	Body      string `json:"body"`
	CreatedAt string `json:"created_at"`
}

func TestBasicEndpoints(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tests := []struct {
		path   string
		status int
		want   string
	}{
		{"/", 200, `"service":"notes"`},
		{"/healthz", 200, `{"status":"ok"}`},
		{"/readyz", 200, `{"status":"ready"}`},
		{"/startedz", 200, `{"status":"started"}`},
		{"/metrics", 200, "pgxpool_max_conns 8"},
	}
	for _, tc := range tests {
		r := e.do(t, "GET", tc.path, "", nil)
		if r.status != tc.status || !strings.Contains(string(r.body), tc.want) {
			t.Errorf("GET %s = %d %s; want %d containing %s", tc.path, r.status, r.body, tc.status, tc.want)
		}
	}
	// Clients choose the method token: unknown ones share one label value, so
	// they cannot grow the metrics without bound.
	for _, m := range []string{"FOO", "BAR123"} {
		e.do(t, m, "/healthz", "", nil)
	}
	r := e.do(t, "GET", "/metrics", "", nil)
	for _, want := range []string{
		`http_requests_total{method="GET",route="/healthz",status="200"} 1`,
		`http_requests_total{method="OTHER",route="/healthz",status="405"} 2`,
		"http_request_duration_seconds_bucket",
	} {
		if !strings.Contains(string(r.body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	for _, leaked := range []string{`method="FOO"`, `method="BAR123"`} {
		if strings.Contains(string(r.body), leaked) {
			t.Errorf("/metrics has a series for %s", leaked)
		}
	}
}

func TestCRUD(t *testing.T) {
	t.Parallel()
	e := newEnv(t)

	r := e.do(t, "POST", "/api/notes", "application/json; charset=utf-8", []byte(`{"title":"héllo 🌍","body":"line1\nline2"}`))
	if r.status != 201 {
		t.Fatalf("POST = %d %s", r.status, r.body)
	}
	var created struct{ ID int64 }
	json.Unmarshal(r.body, &created)
	if loc := r.header.Get("Location"); loc != "/api/notes/"+strconv.FormatInt(created.ID, 10) {
		t.Errorf("Location = %q", loc)
	}
	path := "/api/notes/" + strconv.FormatInt(created.ID, 10)

	r = e.do(t, "GET", path, "", nil)
	var n noteOut
	if err := json.Unmarshal(r.body, &n); err != nil || r.status != 200 {
		t.Fatalf("GET = %d %s", r.status, r.body)
	}
	if n.Title != "héllo 🌍" || n.Body != "line1\nline2" || n.ID != created.ID {
		t.Errorf("GET = %+v", n)
	}
	if _, err := time.Parse(time.RFC3339Nano, n.CreatedAt); err != nil {
		t.Errorf("created_at %q: %v", n.CreatedAt, err)
	}

	r = e.do(t, "PATCH", path, "application/json", []byte(`{"body":"changed"}`))
	json.Unmarshal(r.body, &n)
	if r.status != 200 || n.Title != "héllo 🌍" || n.Body != "changed" {
		t.Errorf("PATCH body = %d %s", r.status, r.body)
	}
	r = e.do(t, "PATCH", path, "application/merge-patch+json", []byte(`{"title":"  "}`))
	json.Unmarshal(r.body, &n)
	if r.status != 200 || n.Title != "Untitled" || n.Body != "changed" {
		t.Errorf("PATCH title = %d %s", r.status, r.body)
	}
	r = e.do(t, "PATCH", path, "application/json", []byte(`{}`))
	if r.status != 200 {
		t.Errorf("empty PATCH = %d %s", r.status, r.body)
	}

	r = e.do(t, "DELETE", path, "", nil)
	if r.status != 204 {
		t.Errorf("DELETE = %d %s", r.status, r.body)
	}
	for _, m := range []string{"GET", "DELETE"} {
		if r := e.do(t, m, path, "", nil); r.status != 404 {
			t.Errorf("%s after delete = %d", m, r.status)
		}
	}
	if r := e.do(t, "PATCH", path, "application/json", []byte(`{"title":"x"}`)); r.status != 404 {
		t.Errorf("PATCH after delete = %d", r.status)
	}
}

func TestCreateTitleRules(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tests := []struct {
		name      string
		body      string
		status    int
		wantTitle string
		wantBody  string
	}{
		{"missing title", `{"body":"b"}`, 201, "Untitled", "b"},
		{"null title", `{"title":null}`, 201, "Untitled", ""},
		{"empty title", `{"title":""}`, 201, "Untitled", ""},
		{"whitespace title", `{"title":" \t\n "}`, 201, "Untitled", ""},
		{"title kept exactly", `{"title":"  padded  "}`, 201, "  padded  ", ""},
		{"160 chars of 4 bytes", `{"title":"` + strings.Repeat("😀", 160) + `"}`, 201, strings.Repeat("😀", 160), ""},
		{"161 chars", `{"title":"` + strings.Repeat("a", 161) + `"}`, 422, "", ""},
		{"161 multibyte chars", `{"title":"` + strings.Repeat("é", 161) + `"}`, 422, "", ""},
		{"NUL in title", `{"title":"a\u0000b"}`, 422, "", ""},
		{"NUL in body", `{"body":"a\u0000b"}`, 422, "", ""},
		{"lone surrogate", `{"title":"\ud800"}`, 422, "", ""},
		{"lone low surrogate", `{"body":"x\udc00"}`, 422, "", ""},
		{"surrogate pair ok", `{"title":"\ud83d\ude00"}`, 201, "😀", ""},
		{"escaped backslash then u", `{"title":"\\ud800"}`, 201, `\ud800`, ""},
		{"unknown field ignored", `{"title":"t","extra":1}`, 201, "t", ""},
		{"invalid UTF-8", "{\"title\":\"\xff\xfe\"}", 422, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(t, "POST", "/api/notes", "application/json", []byte(tc.body))
			if r.status != tc.status {
				t.Fatalf("status = %d %s; want %d", r.status, r.body, tc.status)
			}
			if tc.status != 201 {
				if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
					t.Errorf("Content-Type = %q", ct)
				}
				return
			}
			r = e.do(t, "GET", r.header.Get("Location"), "", nil)
			var n noteOut
			json.Unmarshal(r.body, &n)
			if n.Title != tc.wantTitle || n.Body != tc.wantBody {
				t.Errorf("stored %q/%q; want %q/%q", n.Title, n.Body, tc.wantTitle, tc.wantBody)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.create(t, "exists", "")
	idPath := "/api/notes/" + strconv.FormatInt(id, 10)
	big := []byte(`{"title":"t","body":"` + strings.Repeat("x", maxBody) + `"}`)
	tests := []struct {
		name, method, path, ct, body string
		status                       int
	}{
		{"malformed JSON", "POST", "/api/notes", "application/json", `{"title":`, 400},
		{"not an object", "POST", "/api/notes", "application/json", `["x"]`, 400},
		{"empty body", "POST", "/api/notes", "application/json", ``, 400},
		{"trailing data", "POST", "/api/notes", "application/json", `{"title":"a"} {}`, 400},
		{"wrong type", "POST", "/api/notes", "application/json", `{"title":5}`, 400},
		{"form content type", "POST", "/api/notes", "application/x-www-form-urlencoded", `title=x`, 415},
		{"no content type", "POST", "/api/notes", "", `{"title":"x"}`, 415},
		{"text/plain", "POST", "/api/notes", "text/plain", `{"title":"x"}`, 415},
		{"bad content type syntax", "POST", "/api/notes", "application/json; =", `{"title":"x"}`, 415},
		{"too large", "POST", "/api/notes", "application/json", string(big), 413},
		{"patch too large", "PATCH", idPath, "application/json", string(big), 413},
		{"patch malformed", "PATCH", idPath, "application/json", `{`, 400},
		{"patch wrong content type", "PATCH", idPath, "text/plain", `{}`, 415},
		{"patch long title", "PATCH", idPath, "application/json", `{"title":"` + strings.Repeat("z", 161) + `"}`, 422},
		{"patch NUL body", "PATCH", idPath, "application/json", `{"body":"\u0000"}`, 422},
		{"unknown id", "GET", "/api/notes/999999", "", "", 404},
		{"delete unknown id", "DELETE", "/api/notes/999999", "", "", 404},
		{"bad id", "GET", "/api/notes/abc", "", "", 400},
		{"zero id", "GET", "/api/notes/0", "", "", 400},
		{"negative id", "GET", "/api/notes/-1", "", "", 400},
		{"id overflow", "GET", "/api/notes/99999999999999999999", "", "", 400},
		{"patch bad id", "PATCH", "/api/notes/x", "application/json", `{}`, 400},
		{"delete bad id", "DELETE", "/api/notes/1.5", "", "", 400},
		{"bad cursor", "GET", "/api/notes?cursor=!!!", "", "", 400},
		{"short cursor", "GET", "/api/notes?cursor=AAAA", "", "", 400},
		{"limit zero", "GET", "/api/notes?limit=0", "", "", 400},
		{"limit too big", "GET", "/api/notes?limit=201", "", "", 400},
		{"limit not a number", "GET", "/api/notes?limit=ten", "", "", 400},
		{"unknown route", "GET", "/nope", "", "", 404},
		{"method not allowed", "PUT", "/api/notes", "application/json", `{}`, 405},
		{"method not allowed on id", "POST", idPath, "application/json", `{}`, 405},
		{"method not allowed healthz", "DELETE", "/healthz", "", "", 405},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(t, tc.method, tc.path, tc.ct, []byte(tc.body), "X-Request-ID", "req-"+strings.ReplaceAll(tc.name, " ", "-"))
			if r.status != tc.status {
				t.Fatalf("status = %d %s; want %d", r.status, r.body, tc.status)
			}
			if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("Content-Type = %q", ct)
			}
			var p struct {
				Type      string `json:"type"`
				Title     string `json:"title"`
				Status    int    `json:"status"`
				RequestID string `json:"request_id"`
			}
			if err := json.Unmarshal(r.body, &p); err != nil || p.Status != tc.status || p.Title == "" || p.Type == "" {
				t.Errorf("problem body %s (%v)", r.body, err)
			}
			if p.RequestID != r.header.Get("X-Request-ID") || p.RequestID == "" {
				t.Errorf("request id %q vs header %q", p.RequestID, r.header.Get("X-Request-ID"))
			}
			if tc.status == 405 && r.header.Get("Allow") == "" {
				t.Errorf("405 without Allow header")
			}
		})
	}
}

// TestTooLargeOnePath: a body over the limit is the same 413 problem whether
// the client declares its length or streams it chunked.
func TestTooLargeOnePath(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	body := `{"title":"t","body":"` + strings.Repeat("x", maxBody) + `"}`
	for _, chunked := range []bool{false, true} {
		var r io.Reader = strings.NewReader(body)
		if chunked {
			r = io.MultiReader(r) // hides the length: the client sends it chunked
		}
		req, err := http.NewRequest("POST", e.srv.URL+"/api/notes", r)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		res, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		want := fmt.Sprintf(`"detail":"request body is larger than the limit of %d bytes"`, maxBody)
		if res.StatusCode != 413 || res.Header.Get("Content-Type") != "application/problem+json" || !strings.Contains(string(b), want) {
			t.Errorf("chunked %v: %d %s", chunked, res.StatusCode, b)
		}
	}
}

// TestHeadGetsHeadersOnly: HEAD answers carry the headers of the body they
// would have (type and length) and no body.
func TestHeadGetsHeadersOnly(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, path := range []string{"/healthz", "/nope"} {
		head := e.do(t, "HEAD", path, "", nil, "X-Request-ID", "same")
		del := e.do(t, "DELETE", path, "", nil, "X-Request-ID", "same")
		if head.status != del.status || head.status < 400 {
			t.Fatalf("HEAD %s = %d, DELETE = %d", path, head.status, del.status)
		}
		if len(head.body) != 0 || head.header.Get("Content-Type") != "application/problem+json" ||
			head.header.Get("Content-Length") != strconv.Itoa(len(del.body)) {
			t.Errorf("HEAD %s: body %q, headers %v; DELETE body %d bytes", path, head.body, head.header, len(del.body))
		}
	}
}

func TestRequestIDAndAccessLog(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.do(t, "GET", "/healthz", "", nil, "X-Request-ID", "abc-123")
	if got := r.header.Get("X-Request-ID"); got != "abc-123" {
		t.Errorf("echoed id = %q", got)
	}
	for _, bad := range []string{"has space", strings.Repeat("a", 129), "quote\"", ""} {
		r := e.do(t, "GET", "/healthz", "", nil, "X-Request-ID", bad)
		got := r.header.Get("X-Request-ID")
		if got == bad || !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(got) {
			t.Errorf("for %q got %q; want a generated id", bad, got)
		}
	}
	e.do(t, "GET", "/api/notes/42", "", nil, "X-Request-ID", "log-check")
	var found bool
	for _, line := range strings.Split(strings.TrimSpace(e.logs.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line is not JSON: %s", line)
		}
		if m["request_id"] == "log-check" && m["msg"] == "request" {
			found = true
			for _, k := range []string{"method", "route", "status", "bytes", "latency"} {
				if _, ok := m[k]; !ok {
					t.Errorf("access log lacks %s: %s", k, line)
				}
			}
			if m["route"] != "/api/notes/:id" || m["status"] != float64(404) {
				t.Errorf("access log: %s", line)
			}
		}
	}
	if !found {
		t.Errorf("no access log line for the request:\n%s", e.logs.String())
	}
}

// listAll follows Link headers from the first page.
func (e *env) listPage(tb testing.TB, path string) ([]noteOut, string) {
	tb.Helper()
	r := e.do(tb, "GET", path, "", nil)
	if r.status != 200 {
		tb.Fatalf("GET %s = %d %s", path, r.status, r.body)
	}
	var page []noteOut
	if err := json.Unmarshal(r.body, &page); err != nil {
		tb.Fatal(err)
	}
	next := ""
	if link := r.header.Get("Link"); link != "" {
		m := regexp.MustCompile(`^<([^>]+)>; rel="next"$`).FindStringSubmatch(link)
		if m == nil {
			tb.Fatalf("bad Link %q", link)
		}
		next = m[1]
	}
	return page, next
}

// idsNewestFirst reads the ids of all notes from the database in the
// list's order.
func (e *env) idsNewestFirst(tb testing.TB) []int64 {
	tb.Helper()
	rows, _ := e.pool.Query(context.Background(), "SELECT id FROM notes ORDER BY created_at DESC, id DESC")
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		tb.Fatal(err)
	}
	return ids
}

func TestListPagination(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// Empty list is [] not null.
	if r := e.do(t, "GET", "/api/notes", "", nil); string(bytes.TrimSpace(r.body)) != "[]" || r.header.Get("Link") != "" {
		t.Fatalf("empty list = %s, Link %q", r.body, r.header.Get("Link"))
	}
	// Rows with identical created_at (one COPY transaction) exercise the id tiebreak.
	if _, err := postgres.Seed(context.Background(), e.pool, 60); err != nil {
		t.Fatal(err)
	}
	if _, err := e.pool.Exec(context.Background(), "INSERT INTO notes (title) SELECT 'same' FROM generate_series(1, 60)"); err != nil {
		t.Fatal(err)
	}
	want := e.idsNewestFirst(t)

	first, _ := e.listPage(t, "/api/notes")
	if len(first) != notes.DefaultLimit {
		t.Fatalf("default page has %d notes", len(first))
	}
	for _, limit := range []int{1, 7, 50, 120, 200} {
		var got []int64
		path := fmt.Sprintf("/api/notes?limit=%d", limit)
		for path != "" {
			page, next := e.listPage(t, path)
			if len(page) > limit {
				t.Fatalf("page of %d > limit %d", len(page), limit)
			}
			for _, n := range page {
				got = append(got, n.ID)
			}
			path = next
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("limit %d: got %d ids, want %d in order", limit, len(got), len(want))
		}
	}
}

// TestPaginationConcurrentInserts walks the list while other goroutines
// insert: every note that existed before the walk appears exactly once, in
// order, and nothing appears twice.
func TestPaginationConcurrentInserts(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if _, err := postgres.Seed(context.Background(), e.pool, 300); err != nil {
		t.Fatal(err)
	}
	before := e.idsNewestFirst(t)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				b, _ := json.Marshal(map[string]string{"title": fmt.Sprintf("concurrent %d", i)})
				req, _ := http.NewRequest("POST", e.srv.URL+"/api/notes", bytes.NewReader(b))
				req.Header.Set("Content-Type", "application/json")
				if res, err := e.srv.Client().Do(req); err == nil {
					io.Copy(io.Discard, res.Body)
					res.Body.Close()
				}
			}
		}()
	}
	seen := map[int64]bool{}
	var got []int64
	path := "/api/notes?limit=13"
	for path != "" {
		page, next := e.listPage(t, path)
		for _, n := range page {
			if seen[n.ID] {
				t.Fatalf("note %d listed twice", n.ID)
			}
			seen[n.ID] = true
			got = append(got, n.ID)
		}
		path = next
		time.Sleep(time.Millisecond)
	}
	close(stop)
	wg.Wait()
	// Pre-existing notes appear in the same relative order, none missing.
	j := 0
	for _, id := range got {
		if j < len(before) && id == before[j] {
			j++
		}
	}
	if j != len(before) {
		t.Fatalf("only %d of %d pre-existing notes seen in order", j, len(before))
	}
}

func TestStoreUnavailable(t *testing.T) {
	t.Parallel()
	// A pool pointing at a closed port: every DB-backed endpoint answers 503.
	port, err := testutil.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	pool, err := postgres.NewPool(context.Background(),
		fmt.Sprintf("postgres://nobody:secret@127.0.0.1:%d/none?connect_timeout=1", port), postgres.PoolOptions{MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	h := httpapi.New(httpapi.Options{Store: postgres.New(pool), Tokens: httpapi.NewTokens([]string{testToken})})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	en := &env{h: h, srv: srv}
	tests := []struct{ method, path, body string }{
		{"GET", "/readyz", ""},
		{"GET", "/startedz", ""},
		{"GET", "/api/notes", ""},
		{"POST", "/api/notes", `{"title":"x"}`},
		{"GET", "/api/notes/1", ""},
		{"PATCH", "/api/notes/1", `{"title":"x"}`},
		{"DELETE", "/api/notes/1", ""},
	}
	for _, tc := range tests {
		r := en.do(t, tc.method, tc.path, "application/json", []byte(tc.body))
		if r.status != 503 || r.header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s %s = %d %s", tc.method, tc.path, r.status, r.body)
		}
		if strings.Contains(string(r.body), "secret") {
			t.Errorf("password leaked: %s", r.body)
		}
	}
	if r := en.do(t, "GET", "/healthz", "", nil); r.status != 200 {
		t.Errorf("healthz = %d", r.status)
	}
}

func TestSchemaMissingIs503(t *testing.T) {
	t.Parallel()
	pool, err := pgxpool.New(context.Background(), pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	srv := httptest.NewServer(httpapi.New(httpapi.Options{Store: postgres.New(pool)}))
	t.Cleanup(srv.Close)
	en := &env{srv: srv}
	if r := en.do(t, "GET", "/api/notes", "", nil); r.status != 503 {
		t.Errorf("unmigrated list = %d %s", r.status, r.body)
	}
}

// panicStore makes every call panic, to prove Recover turns it into a 500
// problem instead of a dropped connection.
type panicStore struct{ notes.Store }

func (panicStore) List(context.Context, *notes.Cursor, int) (notes.Page, error) { panic("boom") }

func TestPanicRecovered(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(httpapi.New(httpapi.Options{Store: panicStore{}}))
	t.Cleanup(srv.Close)
	en := &env{srv: srv}
	r := en.do(t, "GET", "/api/notes", "", nil)
	if r.status != 500 || r.header.Get("Content-Type") != "application/problem+json" || strings.Contains(string(r.body), "boom") {
		t.Errorf("panic = %d %s", r.status, r.body)
	}
}

// TestNoServerErrors throws odd methods, paths and queries at the API: none
// may produce a 5xx.
func TestNoServerErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.create(t, "x", "y")
	methods := []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "PROPFIND"}
	paths := []string{"/", "/healthz", "/readyz", "/startedz", "/metrics", "/api/notes", "/api/notes/", "/api/notes/" + strconv.FormatInt(id, 10),
		"/api/notes/%00", "/api/notes/" + strings.Repeat("9", 400), "/api/notes/1/extra", "/api//notes", "/api/notes/%2e%2e",
		"/api/notes?limit=50&limit=1", "/api/notes?cursor=&limit=", "/api/notes?cursor=" + strings.Repeat("A", 5000),
		"/api/notes?limit=-0", "/api/notes?limit=1e2", "/api/notes?limit=99999999999999999999"}
	bodies := []string{"", "{}", `{"title":"t"}`, "null", "\x00", `{"title":{"a":1}}`, `{"body":["x"]}`}
	for _, m := range methods {
		for _, p := range paths {
			for _, b := range bodies {
				r := e.do(t, m, p, "application/json", []byte(b))
				if r.status >= 500 {
					t.Errorf("%s %s %q = %d %s", m, p, b, r.status, r.body)
				}
			}
		}
	}
}

// TestRevisionHeader: with a revision every response carries it (success,
// probes, 404, 405, a bad request, a panic) and GET / reports it; without
// one no header is sent.
func TestRevisionHeader(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(httpapi.New(httpapi.Options{Store: panicStore{}, Revision: "v1.2.3-abc_4"}))
	t.Cleanup(srv.Close)
	en := &env{srv: srv}
	tests := []struct {
		method, path, body string
		status             int
	}{
		{"GET", "/", "", 200},
		{"GET", "/healthz", "", 200},
		{"GET", "/readyz", "", 500},
		{"GET", "/api/notes", "", 500},
		{"GET", "/nope", "", 404},
		{"DELETE", "/api/notes", "", 405},
		{"POST", "/api/notes", "{", 400},
	}
	for _, tc := range tests {
		r := en.do(t, tc.method, tc.path, "application/json", []byte(tc.body))
		if r.status != tc.status {
			t.Errorf("%s %s = %d, want %d", tc.method, tc.path, r.status, tc.status)
		}
		if got := r.header.Get(httpapi.RevisionHeader); got != "v1.2.3-abc_4" {
			t.Errorf("%s %s: %s = %q", tc.method, tc.path, httpapi.RevisionHeader, got)
		}
	}
	var hello struct{ Revision string }
	if err := json.Unmarshal(en.do(t, "GET", "/", "", nil).body, &hello); err != nil || hello.Revision != "v1.2.3-abc_4" {
		t.Errorf("GET / revision = %q (%v)", hello.Revision, err)
	}

	plain := httptest.NewServer(httpapi.New(httpapi.Options{Store: panicStore{}}))
	t.Cleanup(plain.Close)
	r := (&env{srv: plain}).do(t, "GET", "/healthz", "", nil)
	if _, ok := r.header[httpapi.RevisionHeader]; ok {
		t.Errorf("no revision configured, yet %s = %q", httpapi.RevisionHeader, r.header.Get(httpapi.RevisionHeader))
	}
}
