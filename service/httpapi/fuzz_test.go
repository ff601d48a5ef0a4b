package httpapi_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzCreateNote posts arbitrary bodies: the answer is never a 5xx, and a
// note acknowledged with 201 reads back exactly as the request meant it.
//
//	go test ./service/httpapi -run '^$' -fuzz '^FuzzCreateNote$' -fuzztime 20s
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
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	e := newEnv(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest("POST", "/api/notes", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		e.e.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("POST %q = %d %s", body, rec.Code, rec.Body)
		}
		if rec.Code != http.StatusCreated {
			return
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
		e.e.ServeHTTP(rec2, get)
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
	})
}
