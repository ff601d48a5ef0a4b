package httpapi_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// FuzzCreateNote posts arbitrary bodies, with or without an arbitrary
// Idempotency-Key: the answer is never a 5xx, a body whose top-level keys
// are ambiguous (the same key twice, or two keys equal but for case) is a
// 400, a note acknowledged with 201 reads back exactly as the request meant
// it, its key is a valid one (the header value itself unless quoted),
// sending the same request again replays the same answer, and the same body
// as a PATCH of that note is never a 5xx and a 422 exactly when it sets a
// field to null.
//
//	go test ./service/internal/httpapi -run '^$' -fuzz '^FuzzCreateNote$' -fuzztime 20s
func FuzzCreateNote(f *testing.F) {
	seeds := []string{
		`{"title":"hello","body":"world"}`,
		`{}`,
		`{"title":null,"body":null}`,
		`{"title":"   "}`,
		`{"title":"` + strings.Repeat("é", 160) + `"}`,
		`{"title":"` + strings.Repeat("é", 161) + `"}`,
		`{"title":"\u0000"}`,
		`{"title":"\ud800"}`,
		`{"title":"\ud83d\ude00","body":"\\ud800"}`,
		"{\"title\":\"\xff\"}",
		`{"title":1}`,
		`[]`,
		`{"title":"a"}{"title":"b"}`,
		`{"title":"<script>&amp;</script>","body":"\u2028\u2029"}`,
		`{"title":"x","title":"y"}`,
		`{"Title":"case"}`,
		`{"title":"a","TITLE":"b"}`,
		`{"title":"a","t\u0131tle":"b"}`,
		`{"body":"\u017f","bodS":"x"}`,
		`{"x":{"a":1,"a":2},"title":"nested"}`,
		`{"title":"t","body":null}`,
	}
	keys := []string{"", "k", `"quoted"`, `"a\"b"`, strings.Repeat("k", 256), "a b", "\x00", "é"}
	for i, s := range seeds {
		f.Add([]byte(s), false, "")
		f.Add([]byte(s), true, keys[i%len(keys)])
	}
	e := newEnv(f)
	post := func(body []byte, hasKey bool, key string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("POST", "/api/notes", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if hasKey {
			req.Header.Set("Idempotency-Key", key)
		}
		rec := httptest.NewRecorder()
		e.h.ServeHTTP(rec, req)
		return rec
	}
	f.Fuzz(func(t *testing.T, body []byte, hasKey bool, key string) {
		rec := post(body, hasKey, key)
		if rec.Code >= 500 {
			t.Fatalf("POST %q (key %v %q) = %d %s", body, hasKey, key, rec.Code, rec.Body)
		}
		// Ambiguous keys are never accepted; in a well-formed body (valid JSON and UTF-8)
		// they are the reason for the answer, a 400. A body that is also malformed may get
		// the answer for that first (truncated JSON, or 422 for invalid UTF-8).
		keys, isObject := topLevelKeys(body)
		if isObject && ambiguous(keys) {
			wellFormed := json.Valid(body) && utf8.Valid(body)
			if rec.Code == http.StatusCreated || (wellFormed && rec.Code != http.StatusBadRequest) {
				t.Fatalf("POST %q with ambiguous keys %q = %d %s", body, keys, rec.Code, rec.Body)
			}
		}
		if rec.Code != http.StatusCreated {
			return
		}
		if hasKey {
			checkStoredKey(t, e, rec.Header().Get("Location"), key)
			again := post(body, hasKey, key)
			if again.Code != http.StatusCreated || again.Body.String() != rec.Body.String() ||
				again.Header().Get("Location") != rec.Header().Get("Location") || again.Header().Get("Idempotent-Replayed") != "true" {
				t.Fatalf("retry of %q (key %q) = %d %s %v; first %s", body, key, again.Code, again.Body, again.Header(), rec.Body)
			}
		} else if rec.Header().Get("Idempotent-Replayed") != "" {
			t.Fatalf("Idempotent-Replayed without a key")
		}
		// What the client meant, decoded the standard way.
		var in struct {
			Title *string `json:"title"`
			Body  *string `json:"body"`
		}
		if err := json.Unmarshal(body, &in); err != nil {
			t.Fatalf("acknowledged a body that does not decode: %q: %v", body, err)
		}
		wantTitle, wantBody := "Untitled", ""
		if in.Title != nil && strings.TrimSpace(*in.Title) != "" {
			wantTitle = *in.Title
		}
		if in.Body != nil {
			wantBody = *in.Body
		}
		if utf8.RuneCountInString(wantTitle) > 160 {
			t.Fatalf("acknowledged a title of %d characters", utf8.RuneCountInString(wantTitle))
		}
		get := httptest.NewRequest("GET", rec.Header().Get("Location"), nil)
		rec2 := httptest.NewRecorder()
		e.h.ServeHTTP(rec2, get)
		if rec2.Code != 200 {
			t.Fatalf("GET %s = %d %s", rec.Header().Get("Location"), rec2.Code, rec2.Body)
		}
		var got noteOut
		if err := json.Unmarshal(rec2.Body.Bytes(), &got); err != nil {
			t.Fatal(err)
		}
		if got.Title != wantTitle || got.Body != wantBody {
			t.Fatalf("stored %q/%q, acknowledged %q/%q for %q", got.Title, got.Body, wantTitle, wantBody, body)
		}

		patch := httptest.NewRequest("PATCH", rec.Header().Get("Location"), bytes.NewReader(body))
		patch.Header.Set("Content-Type", "application/json")
		patch.Header.Set("Authorization", "Bearer "+testToken)
		rec3 := httptest.NewRecorder()
		e.h.ServeHTTP(rec3, patch)
		var members map[string]json.RawMessage
		_ = json.Unmarshal(body, &members) // it decoded above
		setsNull := false
		for k, v := range members {
			if (strings.EqualFold(k, "title") || strings.EqualFold(k, "body")) && string(v) == "null" {
				setsNull = true
			}
		}
		if rec3.Code >= 500 || (rec3.Code == http.StatusUnprocessableEntity) != setsNull || (!setsNull && rec3.Code != 200) {
			t.Fatalf("PATCH %q = %d %s", body, rec3.Code, rec3.Body)
		}
	})
}

// topLevelKeys returns the keys of body's top-level object as sent
// (unescaped) and whether body starts as one.
func topLevelKeys(body []byte) ([]string, bool) {
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, false
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		k, ok := tok.(string)
		if err != nil || !ok {
			break
		}
		keys = append(keys, k)
		var skip json.RawMessage
		if dec.Decode(&skip) != nil {
			break
		}
	}
	return keys, true
}

// ambiguous reports whether two keys are equal under Unicode case folding
// or under encoding/json's matching (each character upper-cased).
func ambiguous(keys []string) bool {
	for i := range keys {
		for j := range i {
			// Both rules on purpose: EqualFold has orbits (k, K, the Kelvin sign) that
			// upper-casing lacks, and upper-casing maps ı to I, which EqualFold does not.
			upper := func(k string) string { return strings.Map(unicode.ToUpper, k) }
			if strings.EqualFold(keys[i], keys[j]) || upper(keys[i]) == upper(keys[j]) {
				return true
			}
		}
	}
	return false
}

// checkStoredKey asserts that the note at location has a valid key, and that
// it is the header value itself when that was sent unquoted.
func checkStoredKey(t *testing.T, e *env, location, header string) {
	t.Helper()
	var stored string
	err := e.pool.QueryRow(t.Context(), "SELECT idempotency_key FROM notes WHERE id = $1",
		strings.TrimPrefix(location, "/api/notes/")).Scan(&stored)
	if err != nil {
		t.Fatalf("key of %s: %v", location, err)
	}
	if len(stored) < 1 || len(stored) > 255 || strings.IndexFunc(stored, func(r rune) bool { return r < 0x21 || r > 0x7e }) >= 0 {
		t.Fatalf("stored key %q for header %q", stored, header)
	}
	if !strings.HasPrefix(header, `"`) && stored != header {
		t.Fatalf("stored key %q, header %q", stored, header)
	}
}
