package httpapi_test

import (
	"encoding/json"
	"log/slog"
	"net"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/notes-stack/notes/internal/testing/testutil"
	"github.com/notes-stack/notes/service/internal/httpapi"
)

// TestAmbiguousKeysRejected: a key sent twice, or two keys that encoding/json
// or Unicode case folding would read as one field, is a 400 on POST and
// PATCH, and nothing is stored or changed.
func TestAmbiguousKeysRejected(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.create(t, "original", "kept")
	path := "/api/notes/" + strconv.FormatInt(id, 10)
	tests := []struct {
		name, body string
		want       int
	}{
		{"duplicate", `{"title":"a","title":"b"}`, 400},
		{"duplicate body", `{"body":"a","title":"t","body":"b"}`, 400},
		{"case", `{"title":"a","TITLE":"b"}`, 400},
		{"mixed case", `{"Title":"a","tItLe":"b"}`, 400},
		{"escaped duplicate", `{"title":"a","\u0074itle":"b"}`, 400},
		{"dotless i (upper-cases to I, as older encoding/json matched keys)", `{"title":"a","tıtle":"b"}`, 400},
		{"long s (folds to s)", `{"body":"a","bodſ":"x","bodS":"y"}`, 400},
		{"kelvin sign (folds to k)", `{"k":1,"\u212a":2}`, 400},
		{"unknown duplicate", `{"title":"a","x":1,"x":2}`, 400},
		{"one key in another case is that field", `{"TITLE":"upper"}`, 0},
		{"nested duplicates are the value's business", `{"title":"n","x":{"a":1,"a":2}}`, 0},
		{"distinct keys", `{"title":"t","body":"b","titles":"x"}`, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			post := e.do(t, "POST", "/api/notes", "application/json", []byte(tc.body))
			patch := e.do(t, "PATCH", path, "application/json", []byte(tc.body))
			if tc.want == 0 {
				if post.status != 201 || patch.status != 200 {
					t.Fatalf("POST = %d %s, PATCH = %d %s", post.status, post.body, patch.status, patch.body)
				}
				return
			}
			for _, r := range []resp{post, patch} {
				if r.status != tc.want || r.header.Get("Content-Type") != "application/problem+json" {
					t.Errorf("%s = %d %s %s", tc.body, r.status, r.header.Get("Content-Type"), r.body)
				}
				if !strings.Contains(string(r.body), "key") {
					t.Errorf("detail does not say which key: %s", r.body)
				}
			}
		})
	}
	// The accepted cases above changed the note; the rejected ones did not
	// create notes: count them.
	var n int
	if err := e.pool.QueryRow(t.Context(), "SELECT count(*) FROM notes").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if want := 1 + 3; n != want {
		t.Errorf("%d notes stored, want %d", n, want)
	}
}

// TestKeysMatchedAsEncodingJSON: a lone key reaches a field exactly when
// encoding/json would put it there (strings.EqualFold), so the service stores
// what a client's standard decoder reads back; the wider folding that refuses
// ambiguous keys does not widen what one key means (found by FuzzCreateNote:
// "tıtle" was stored as the title, which encoding/json does not do).
func TestKeysMatchedAsEncodingJSON(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, tc := range []struct{ body, title string }{
		{`{"TITLE":"upper"}`, "upper"},
		{`{"tItLe":"mixed"}`, "mixed"},
		{`{"tıtle":"dotless"}`, "Untitled"},
		{`{"tİtle":"dotted"}`, "Untitled"},
	} {
		r := e.do(t, "POST", "/api/notes", "application/json", []byte(tc.body))
		var created struct{ ID int64 }
		if r.status != 201 || json.Unmarshal(r.body, &created) != nil {
			t.Fatalf("POST %s = %d %s", tc.body, r.status, r.body)
		}
		g := e.do(t, "GET", "/api/notes/"+strconv.FormatInt(created.ID, 10), "", nil)
		var got noteOut
		if g.status != 200 || json.Unmarshal(g.body, &got) != nil || got.Title != tc.title {
			t.Errorf("POST %s stored %d %s, want the title %q", tc.body, g.status, g.body, tc.title)
		}
		var std struct {
			Title *string `json:"title"`
		}
		if err := json.Unmarshal([]byte(tc.body), &std); err != nil {
			t.Fatal(err)
		}
		if (std.Title != nil) != (tc.title != "Untitled") {
			t.Errorf("encoding/json reads %s differently from this table: %v", tc.body, std.Title)
		}
	}
}

// TestPatchSemantics: PATCH sets the fields it names; null is refused (a
// note cannot lose its title or body) and changes nothing.
func TestPatchSemantics(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.create(t, "title", "body")
	path := "/api/notes/" + strconv.FormatInt(id, 10)
	tests := []struct {
		body       string
		want       int
		title, bod string // the note afterwards
	}{
		{`{"title":null}`, 422, "title", "body"},
		{`{"body":null}`, 422, "title", "body"},
		{`{"title":"new","body":null}`, 422, "title", "body"},
		{`{"title":1}`, 400, "title", "body"},
		{`{}`, 200, "title", "body"},
		{`{"unknown":null}`, 200, "title", "body"},
		{`{"body":""}`, 200, "title", ""},
		{`{"title":""}`, 200, "Untitled", ""},
		{`{"title":"t2","body":"b2"}`, 200, "t2", "b2"},
	}
	for _, tc := range tests {
		r := e.do(t, "PATCH", path, "application/json", []byte(tc.body))
		if r.status != tc.want {
			t.Errorf("PATCH %s = %d %s, want %d", tc.body, r.status, r.body, tc.want)
		}
		if tc.want == 422 && !strings.Contains(string(r.body), "cannot be null") {
			t.Errorf("PATCH %s: detail %s", tc.body, r.body)
		}
		var got noteOut
		if err := json.Unmarshal(e.do(t, "GET", path, "", nil).body, &got); err != nil {
			t.Fatal(err)
		}
		if got.Title != tc.title || got.Body != tc.bod {
			t.Errorf("after PATCH %s: %q/%q, want %q/%q", tc.body, got.Title, got.Body, tc.title, tc.bod)
		}
	}
	// POST keeps the Flask rules: a null title is "Untitled", a null body "".
	r := e.do(t, "POST", "/api/notes", "application/json", []byte(`{"title":null,"body":null}`))
	if r.status != 201 {
		t.Errorf("POST with nulls = %d %s", r.status, r.body)
	}
}

// TestDatabaseRejectionDetail: when Postgres refuses a note, the client
// gets our words and the log gets Postgres's.
func TestDatabaseRejectionDetail(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// A constraint the domain does not know, so the database is the one to refuse.
	if _, err := e.pool.Exec(t.Context(),
		`ALTER TABLE notes ADD CONSTRAINT test_secret_marker CHECK (body <> 'forbidden')`); err != nil {
		t.Fatal(err)
	}
	r := e.do(t, "POST", "/api/notes", "application/json", []byte(`{"body":"forbidden"}`), "X-Request-ID", "rejected-1")
	if r.status != 422 {
		t.Fatalf("POST = %d %s", r.status, r.body)
	}
	for _, leak := range []string{"test_secret_marker", "violates", "constraint"} {
		if strings.Contains(string(r.body), leak) {
			t.Errorf("response shows Postgres's text %q: %s", leak, r.body)
		}
	}
	if !strings.Contains(string(r.body), "the database rejected the note") {
		t.Errorf("detail: %s", r.body)
	}
	var logged bool
	for _, line := range strings.Split(e.logs.String(), "\n") {
		if strings.Contains(line, `"request_id":"rejected-1"`) && strings.Contains(line, "test_secret_marker") {
			logged = true
		}
	}
	if !logged {
		t.Errorf("the log lacks Postgres's message:\n%s", e.logs.String())
	}
}

// TestWriteAuth: which requests need a token in each WRITE_AUTH mode, and
// the 401 they get without a valid one.
func TestWriteAuth(t *testing.T) {
	t.Parallel()
	const other = "other-token-fedcba9876543210"
	envs := map[httpapi.WriteAuth]*env{}
	for _, mode := range []httpapi.WriteAuth{"", httpapi.WriteAuthAll, httpapi.WriteAuthNone} {
		envs[mode] = newEnvWith(t, func(o *httpapi.Options) {
			o.WriteAuth = mode
			o.Tokens = httpapi.NewTokens([]string{testToken, other})
		})
	}
	envs["no tokens"] = newEnvWith(t, func(o *httpapi.Options) { o.Tokens = nil })
	auths := map[string]string{
		"valid":        "Bearer " + testToken,
		"second token": "Bearer " + other,
		"scheme case":  "bearer " + testToken,
		"missing":      "",
		"wrong":        "Bearer " + testToken + "x",
		"prefix":       "Bearer " + testToken[:len(testToken)-1],
		"empty token":  "Bearer ",
		"basic":        "Basic dGVzdDp0ZXN0",
		"token only":   testToken,
	}
	good := map[string]bool{"valid": true, "second token": true, "scheme case": true}
	protected := map[httpapi.WriteAuth][]string{
		"":                    {"PATCH", "DELETE"},
		httpapi.WriteAuthAll:  {"POST", "PATCH", "DELETE"},
		httpapi.WriteAuthNone: nil,
		"no tokens":           {"PATCH", "DELETE"},
	}
	for mode, e := range envs {
		for name, auth := range auths {
			for _, method := range []string{"GET", "POST", "PATCH", "DELETE"} {
				id := e.create(t, "n", "b") // env.do authenticates it
				path := "/api/notes/" + strconv.FormatInt(id, 10)
				body := []byte(`{"title":"x"}`)
				if method == "POST" {
					path = "/api/notes"
				}
				r := e.do(t, method, path, "application/json", body, "Authorization", auth)
				needs := false
				for _, m := range protected[mode] {
					needs = needs || m == method
				}
				allowed := !needs || (good[name] && mode != "no tokens")
				if allowed {
					if r.status >= 300 {
						t.Errorf("mode %q, %s with %s: %d %s", mode, method, name, r.status, r.body)
					}
					continue
				}
				if r.status != 401 || r.header.Get("Content-Type") != "application/problem+json" ||
					!strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("mode %q, %s with %s: %d %v %s", mode, method, name, r.status, r.header, r.body)
				}
				var got noteOut
				if err := json.Unmarshal(e.do(t, "GET", "/api/notes/"+strconv.FormatInt(id, 10), "", nil).body, &got); err != nil || got.Title != "n" {
					t.Errorf("mode %q, %s with %s changed the note: %+v %v", mode, method, name, got, err)
				}
			}
		}
	}
	// Unauthenticated requests are refused before the id or body is looked at.
	r := envs[""].do(t, "DELETE", "/api/notes/not-a-number", "", nil, "Authorization", "")
	if r.status != 401 {
		t.Errorf("DELETE of a bad id without a token = %d", r.status)
	}
}

// TestRemoteIPFromTrustedProxiesOnly: X-Forwarded-For gives the logged
// client address only when the peer is in a trusted network.
func TestRemoteIPFromTrustedProxiesOnly(t *testing.T) {
	t.Parallel()
	_, proxies, _ := net.ParseCIDR("10.9.0.0/16")
	tests := []struct {
		name    string
		trusted []*net.IPNet
		peer    string
		xff     string
		want    string
	}{
		{"no proxies: the header is ignored", nil, "10.9.0.5:4000", "203.0.113.7", "10.9.0.5"},
		{"private peers are not trusted by default", nil, "192.168.1.2:4000", "203.0.113.7", "192.168.1.2"},
		{"loopback is not trusted by default", nil, "127.0.0.1:4000", "203.0.113.7", "127.0.0.1"},
		{"trusted proxy", []*net.IPNet{proxies}, "10.9.0.5:4000", "203.0.113.7", "203.0.113.7"},
		{"spoofed entries before the proxy's", []*net.IPNet{proxies}, "10.9.0.5:4000", "1.2.3.4, 203.0.113.7", "203.0.113.7"},
		{"untrusted peer", []*net.IPNet{proxies}, "198.51.100.9:4000", "203.0.113.7", "198.51.100.9"},
		{"chain of trusted proxies", []*net.IPNet{proxies}, "10.9.0.5:4000", "203.0.113.7, 10.9.1.1", "203.0.113.7"},
		{"garbage", []*net.IPNet{proxies}, "10.9.0.5:4000", "\x01not-an-ip", "10.9.0.5"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			logs := &testutil.SyncBuffer{}
			h := httpapi.New(httpapi.Options{Store: panicStore{}, Logger: slog.New(slog.NewJSONHandler(logs, nil)), TrustedProxies: tc.trusted})
			req := httptest.NewRequest("GET", "/healthz", nil)
			req.RemoteAddr = tc.peer
			req.Header.Set("X-Forwarded-For", tc.xff)
			req.Header.Set("X-Real-IP", "6.6.6.6") // never used
			h.ServeHTTP(httptest.NewRecorder(), req)
			var line struct {
				RemoteIP string `json:"remote_ip"`
			}
			if err := json.Unmarshal([]byte(strings.TrimSpace(logs.String())), &line); err != nil {
				t.Fatalf("%v: %s", err, logs.String())
			}
			if line.RemoteIP != tc.want {
				t.Errorf("remote_ip = %q, want %q", line.RemoteIP, tc.want)
			}
		})
	}
}
