package httpapi_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// post sends POST /api/notes through the handler directly, so header values
// that net/http's client refuses to send (control characters) reach it.
func (e *env) post(tb testing.TB, body string, keys ...string) *httptest.ResponseRecorder {
	tb.Helper()
	req := httptest.NewRequest("POST", "/api/notes", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for _, k := range keys {
		req.Header.Add("Idempotency-Key", k)
	}
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	return rec
}

func createdID(tb testing.TB, rec *httptest.ResponseRecorder) int64 {
	tb.Helper()
	var out struct{ ID int64 }
	if rec.Code != 201 || json.Unmarshal(rec.Body.Bytes(), &out) != nil || out.ID == 0 {
		tb.Fatalf("POST = %d %s; want 201 {id}", rec.Code, rec.Body)
	}
	if loc := rec.Header().Get("Location"); loc != "/api/notes/"+strconv.FormatInt(out.ID, 10) {
		tb.Fatalf("Location = %q for id %d", loc, out.ID)
	}
	return out.ID
}

func (e *env) countKey(tb testing.TB, key string) int {
	tb.Helper()
	var n int
	if err := e.pool.QueryRow(tb.Context(), "SELECT count(*) FROM notes WHERE idempotency_key = $1", key).Scan(&n); err != nil {
		tb.Fatal(err)
	}
	return n
}

func TestIdempotencyKeyReplay(t *testing.T) {
	t.Parallel()
	e := newEnv(t)

	first := e.post(t, `{"title":"a","body":"b"}`, "k-1")
	id := createdID(t, first)
	if h := first.Header().Get("Idempotent-Replayed"); h != "" {
		t.Errorf("first answer has Idempotent-Replayed %q", h)
	}
	// Same payload, including one that only matches after "Untitled" defaulting.
	for _, body := range []string{`{"title":"a","body":"b"}`, `{"body":"b","title":"a","extra":1}`} {
		again := e.post(t, body, "k-1")
		if got := createdID(t, again); got != id {
			t.Errorf("replay id = %d, want %d", got, id)
		}
		if again.Body.String() != first.Body.String() || again.Header().Get("Location") != first.Header().Get("Location") {
			t.Errorf("replay %q %q differs from %q %q", again.Body, again.Header().Get("Location"), first.Body, first.Header().Get("Location"))
		}
		if h := again.Header().Get("Idempotent-Replayed"); h != "true" {
			t.Errorf("replay Idempotent-Replayed = %q", h)
		}
	}
	untitled := createdID(t, e.post(t, `{}`, "k-untitled"))
	if got := createdID(t, e.post(t, `{"title":"  ","body":""}`, "k-untitled")); got != untitled {
		t.Errorf("defaulted replay id = %d, want %d", got, untitled)
	}
	// The quoted (structured-field string) form is the same key.
	if got := createdID(t, e.post(t, `{"title":"a","body":"b"}`, `"k-1"`)); got != id {
		t.Errorf("quoted replay id = %d, want %d", got, id)
	}
	if n := e.countKey(t, "k-1"); n != 1 {
		t.Errorf("%d rows with k-1, want 1", n)
	}

	// Same key, different payload: 422, nothing stored.
	for _, body := range []string{`{"title":"a","body":"c"}`, `{"title":"A","body":"b"}`, `{"title":"a"}`} {
		rec := e.post(t, body, "k-1")
		if rec.Code != 422 || !strings.Contains(rec.Body.String(), "Idempotency-Key reused with a different request") ||
			rec.Header().Get("Content-Type") != "application/problem+json" {
			t.Errorf("reuse %s = %d %s", body, rec.Code, rec.Body)
		}
	}

	// A different key is a different note.
	if other := createdID(t, e.post(t, `{"title":"a","body":"b"}`, "k-2")); other == id {
		t.Error("second key returned the first note")
	}

	// Deleting the note frees its key.
	if r := e.do(t, "DELETE", "/api/notes/"+strconv.FormatInt(id, 10), "", nil); r.status != 204 {
		t.Fatalf("DELETE = %d", r.status)
	}
	rec := e.post(t, `{"title":"new","body":""}`, "k-1")
	if got := createdID(t, rec); got == id || rec.Header().Get("Idempotent-Replayed") != "" {
		t.Errorf("after delete: id %d (old %d), replayed %q", got, id, rec.Header().Get("Idempotent-Replayed"))
	}

	// Through a real connection and client too.
	r := e.do(t, "POST", "/api/notes", "application/json", []byte(`{"title":"a","body":"b"}`), "Idempotency-Key", "k-2")
	if r.status != 201 || r.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("client replay = %d %v", r.status, r.header)
	}
}

func TestIdempotencyKeyInvalid(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tests := []struct {
		name string
		keys []string
	}{
		{"empty", []string{""}},
		{"empty quoted", []string{`""`}},
		{"too long", []string{strings.Repeat("k", 256)}},
		{"too long quoted", []string{`"` + strings.Repeat("k", 256) + `"`}},
		{"space inside", []string{"a b"}},
		{"tab", []string{"a\tb"}},
		{"control char", []string{"a\x01b"}},
		{"DEL", []string{"a\x7fb"}},
		{"newline", []string{"a\nb"}},
		{"NUL", []string{"a\x00b"}},
		{"non-ASCII", []string{"clé"}},
		{"non-ASCII byte", []string{"a\xffb"}},
		{"unterminated quote", []string{`"abc`}},
		{"data after quote", []string{`"abc"d`}},
		{"bad escape", []string{`"a\nb"`}},
		{"quoted space", []string{`"a b"`}},
		{"two headers", []string{"a", "b"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := e.post(t, `{"title":"x"}`, tc.keys...)
			if rec.Code != 400 || !strings.Contains(rec.Body.String(), "Idempotency-Key") ||
				rec.Header().Get("Content-Type") != "application/problem+json" {
				t.Errorf("key %q = %d %s; want 400 naming the header", tc.keys, rec.Code, rec.Body)
			}
		})
	}
	var n int
	if err := e.pool.QueryRow(t.Context(), "SELECT count(*) FROM notes").Scan(&n); err != nil || n != 0 {
		t.Errorf("%d notes stored by rejected requests (%v)", n, err)
	}

	valid := []struct{ header, stored string }{
		{strings.Repeat("k", 255), strings.Repeat("k", 255)},
		{`"` + strings.Repeat("q", 255) + `"`, strings.Repeat("q", 255)},
		{"!", "!"},
		{`~"\`, `~"\`},
		{`"a\"b\\c"`, `a"b\c`},
		{"8e03978e-40d5-43e8-bc93-6894a57f9324", "8e03978e-40d5-43e8-bc93-6894a57f9324"},
	}
	for _, v := range valid {
		createdID(t, e.post(t, `{"title":"x"}`, v.header))
		if e.countKey(t, v.stored) != 1 {
			t.Errorf("header %q: no note stored under %q", v.header, v.stored)
		}
	}
}

func TestIdempotencyKeyConcurrent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const n = 8
	for round := range 5 {
		key := "concurrent-" + strconv.Itoa(round)
		var wg sync.WaitGroup
		ids := make([]int64, n)
		codes := make([]int, n)
		replayed := make([]bool, n)
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				req, _ := http.NewRequest("POST", e.srv.URL+"/api/notes", strings.NewReader(`{"title":"race","body":"`+key+`"}`))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Idempotency-Key", key)
				res, err := e.srv.Client().Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				defer res.Body.Close()
				var out struct{ ID int64 }
				json.NewDecoder(res.Body).Decode(&out)
				ids[i], codes[i], replayed[i] = out.ID, res.StatusCode, res.Header.Get("Idempotent-Replayed") == "true"
			})
		}
		close(start)
		wg.Wait()
		fresh := 0
		for i := range n {
			if codes[i] != 201 || ids[i] != ids[0] || ids[i] == 0 {
				t.Fatalf("round %d: answers %v ids %v", round, codes, ids)
			}
			if !replayed[i] {
				fresh++
			}
		}
		if fresh != 1 {
			t.Errorf("round %d: %d answers without Idempotent-Replayed, want 1", round, fresh)
		}
		if c := e.countKey(t, key); c != 1 {
			t.Errorf("round %d: %d rows, want 1", round, c)
		}
	}
}

// Without the header every POST creates a note, as before.
func TestNoIdempotencyKeyUnchanged(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.post(t, `{"title":"same","body":"same"}`)
	b := e.post(t, `{"title":"same","body":"same"}`)
	if createdID(t, a) == createdID(t, b) {
		t.Error("two POSTs without a key returned the same note")
	}
	for _, rec := range []*httptest.ResponseRecorder{a, b} {
		if h := rec.Header().Get("Idempotent-Replayed"); h != "" {
			t.Errorf("Idempotent-Replayed = %q without a key", h)
		}
	}
	var n int
	if err := e.pool.QueryRow(t.Context(), "SELECT count(*) FROM notes WHERE idempotency_key IS NULL").Scan(&n); err != nil || n != 2 {
		t.Errorf("%d notes without a key (%v), want 2", n, err)
	}
}

// TestTransportRetryWithKey reproduces the deploy race: the request reaches
// the service and is stored, but the connection closes before the answer
// gets back. Go's Transport retries it on its own when it carries an
// Idempotency-Key, and the retry is answered by a replay of the one note.
// Without the key the client gets an error and cannot know the note exists.
func TestTransportRetryWithKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var mu sync.Mutex
	dropNext := false
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		e.h.ServeHTTP(rec, r) // the request is handled...
		mu.Lock()
		drop := dropNext
		dropNext = false
		mu.Unlock()
		if drop { // ...but the answer is lost with the connection.
			conn, _, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Error(err)
				return
			}
			conn.Close()
			return
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		w.Write(rec.Body.Bytes())
	}))
	t.Cleanup(front.Close)

	post := func(key string) (*http.Response, error) {
		client := &http.Client{Transport: &http.Transport{}}
		t.Cleanup(client.CloseIdleConnections)
		// Open a keep-alive connection, so the POST goes on a reused one.
		res, err := client.Get(front.URL + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body) // read to EOF, or the connection is not reused
		res.Body.Close()
		mu.Lock()
		dropNext = true
		mu.Unlock()
		req, _ := http.NewRequest("POST", front.URL+"/api/notes", strings.NewReader(`{"title":"retried"}`))
		req.Header.Set("Content-Type", "application/json")
		if key != "" {
			req.Header.Set("Idempotency-Key", key)
		}
		return client.Do(req)
	}

	res, err := post("retry-key")
	if err != nil {
		t.Fatalf("POST with key: %v", err)
	}
	res.Body.Close()
	if res.StatusCode != 201 || res.Header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("POST with key = %d %v; want a replayed 201", res.StatusCode, res.Header)
	}
	if n := e.countKey(t, "retry-key"); n != 1 {
		t.Errorf("%d notes with the key, want 1", n)
	}

	if res, err := post(""); err == nil {
		res.Body.Close()
		t.Fatalf("POST without key = %d; want the transport error (no automatic retry)", res.StatusCode)
	}
	var n int
	if err := e.pool.QueryRow(t.Context(), "SELECT count(*) FROM notes WHERE idempotency_key IS NULL").Scan(&n); err != nil || n != 1 {
		t.Errorf("%d notes without a key (%v): the lost POST was stored once", n, err)
	}
}
