//go:build e2e

package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// genFuzz is request i of the run with env.seed: the same bytes whichever worker sends it.
func genFuzz(env fuzzEnv, i int) *fuzzReq {
	r := rand.New(rand.NewPCG(env.seed, uint64(i)))
	g := &gen{r: r, env: env, i: i}
	// The families with their shares of the run, in percent.
	families := []struct {
		percent int
		gen     func() *fuzzReq
	}{
		{14, g.read}, {12, g.validPost}, {9, g.nearNote}, {10, g.metrics}, {9, g.path}, {10, g.headers},
		{8, g.framing}, {6, g.modify}, {8, g.method}, {4, g.version}, {10, g.randomBody},
	}
	p := r.IntN(100)
	for _, f := range families {
		if p < f.percent {
			return f.gen()
		}
		p -= f.percent
	}
	panic("the family shares do not add up to 100")
}

type gen struct {
	r   *rand.Rand
	env fuzzEnv
	i   int
}

// raw is a request as it goes on the wire: a request line, header lines and the bytes after
// the blank line, all exactly as given.
type raw struct {
	method, target, proto string // proto "": an HTTP/0.9 request line, no headers
	headers               []string
	body                  []byte
	eol                   string // "\r\n" unless a generator chooses a bare "\n"
}

func (q raw) bytes() []byte {
	eol := q.eol
	if eol == "" {
		eol = "\r\n"
	}
	var b bytes.Buffer
	b.WriteString(q.method + " " + q.target)
	if q.proto == "" {
		b.WriteString(eol)
		return b.Bytes()
	}
	b.WriteString(" " + q.proto + eol)
	for _, h := range q.headers {
		b.WriteString(h + eol)
	}
	b.WriteString(eol)
	b.Write(q.body)
	return b.Bytes()
}

func (g *gen) req(method, target string) raw {
	return raw{method: method, target: target, proto: "HTTP/1.1", headers: []string{"Host: " + g.env.host}}
}

// withBody adds the body with a correct Content-Length, or chunked for one in ten.
func (g *gen) withBody(q raw, contentType string, body []byte) raw {
	if contentType != "" {
		q.headers = append(q.headers, "Content-Type: "+contentType)
	}
	if g.r.IntN(10) == 0 {
		q.headers = append(q.headers, "Transfer-Encoding: chunked")
		q.body = g.chunked(body)
		return q
	}
	q.headers = append(q.headers, "Content-Length: "+strconv.Itoa(len(body)))
	q.body = body
	return q
}

// chunked encodes body in random chunks, sometimes with extensions or a trailer (both valid).
func (g *gen) chunked(body []byte) []byte {
	var b bytes.Buffer
	for len(body) > 0 {
		n := 1 + g.r.IntN(min(len(body), 64))
		if g.r.IntN(4) == 0 {
			n = len(body)
		}
		fmt.Fprintf(&b, "%x", n)
		if g.r.IntN(20) == 0 {
			b.WriteString(";ext=1")
		}
		b.WriteString("\r\n")
		b.Write(body[:n])
		b.WriteString("\r\n")
		body = body[n:]
	}
	b.WriteString("0\r\n")
	if g.r.IntN(20) == 0 {
		b.WriteString("X-Trailer: 1\r\n")
	}
	b.WriteString("\r\n")
	return b.Bytes()
}

// bigChunks encodes a large body in chunks of 64 KiB.
func (g *gen) bigChunks(body []byte) []byte {
	var b bytes.Buffer
	for len(body) > 0 {
		n := min(len(body), 64<<10)
		fmt.Fprintf(&b, "%x\r\n", n)
		b.Write(body[:n])
		b.WriteString("\r\n")
		body = body[n:]
	}
	b.WriteString("0\r\n\r\n")
	return b.Bytes()
}

func (g *gen) pick(list ...string) string { return list[g.r.IntN(len(list))] }

func (g *gen) done(family string, q raw, clean bool) *fuzzReq {
	return &fuzzReq{family: family, method: q.method, wire: q.bytes(), clean: clean}
}

// plainText is ASCII words: a title or body every layer keeps as is.
func (g *gen) plainText(maxWords int) string {
	words := []string{"note", "fuzz", "front", "door", "nginx", "replica", "title", "body", "x", "42", "a-b", "c_d"}
	n := 1 + g.r.IntN(maxWords)
	out := make([]string, n)
	for k := range out {
		out[k] = words[g.r.IntN(len(words))]
	}
	return strings.Join(out, " ")
}

// text is valid UTF-8 with quotes, escapes, control characters and other scripts. It never
// holds '#': the metrics check looks for Prometheus comment lines in every answer.
func (g *gen) text(maxRunes int) string {
	pieces := []string{"a", "Z", "0", " ", "\t", "\n", `"`, `\`, "/", "<", "é", "ß", "ı", "K", "日本", "😀", "\u200b", "\u2028", "'", "{", "}", "%", "\x01", "\x7f"}
	var b strings.Builder
	for range g.r.IntN(maxRunes + 1) {
		b.WriteString(pieces[g.r.IntN(len(pieces))])
	}
	return b.String()
}

func (g *gen) noteID() string {
	switch k := g.r.IntN(6); {
	case k == 1 && g.env.maxID > 0: // "+1" and "%31" may reach note 1: only one older than the run
		return g.pick("0", "-1", "abc", "1.5", "1e3", "%31", "9223372036854775808", "+1", "%201", "0x1", "１")
	case k <= 1 || g.env.maxID == 0: // an id no note of the run gets
		return strconv.FormatInt(1_000_000_000_000+g.r.Int64N(1_000_000), 10)
	default:
		return strconv.FormatInt(1+g.r.Int64N(g.env.maxID), 10)
	}
}

// read is the ordinary read traffic, with the statuses it must get.
func (g *gen) read() *fuzzReq {
	type read struct {
		target string
		want   []int
		allow  int
	}
	var rd read
	switch g.r.IntN(9) {
	case 0, 1, 2:
		rd = read{"/api/notes?limit=" + strconv.Itoa(1+g.r.IntN(200)), []int{200}, 0}
	case 3:
		rd = read{"/api/notes", []int{200}, 0}
	case 4:
		rd = read{"/api/notes?" + g.pick("limit=0", "limit=201", "limit=-1", "limit=x", "limit=1&limit=2", "cursor=zz", "cursor=", "cursor=AAAAAAAAAAAAAAAAAAAAAA"), []int{400}, 0}
	case 5:
		id := g.noteID()
		rd = read{"/api/notes/" + id, []int{200, 404}, 0}
		if n, err := strconv.ParseInt(id, 10, 64); err != nil || n < 1 || id[0] == '+' {
			// Go's ParseInt takes "+1"; Echo may or may not unescape "%31".
			rd.want = []int{200, 400, 404}
		}
	case 6:
		rd = read{g.pick("/", "/healthz", "/startedz", "/nginx-health"), []int{200}, 0}
	case 7:
		// The readiness check's SELECT 1 has a second: on a starved host it may answer 503.
		rd = read{"/readyz", []int{200}, http.StatusServiceUnavailable}
	default:
		rd = read{"/api/notes?limit=" + strconv.Itoa(1+g.r.IntN(50)) + "&x=" + url.QueryEscape(g.text(10)), []int{200}, 0}
	}
	q := g.req("GET", rd.target)
	if g.r.IntN(10) == 0 {
		q.headers = append(q.headers, "Accept-Encoding: gzip")
	}
	f := g.done("read", q, true)
	f.want, f.allow = rd.want, rd.allow
	return f
}

// idempotencyKey is none, a key of this request alone, or one of a few keys shared with other
// requests of the run (a replay with the same note, or a reuse with another).
func (g *gen) idempotencyKey() (header string, pool int) {
	switch g.r.IntN(4) {
	case 0:
		return "", -1
	case 1:
		k := g.r.IntN(8)
		return fmt.Sprintf("Idempotency-Key: fz-%d-pool-%d", g.env.seed, k), k
	default:
		return fmt.Sprintf("Idempotency-Key: fz-%d-%d", g.env.seed, g.i), -1
	}
}

// validPost is a note every correct stack stores: a 201, and the note reads back.
func (g *gen) validPost() *fuzzReq {
	note := notePayload{Title: g.plainText(8), Body: g.plainText(60)}
	if g.r.IntN(3) == 0 {
		note = notePayload{Title: g.text(70), Body: g.text(2000)} // at most 140 characters
	}
	key, pool := g.idempotencyKey()
	if pool >= 0 {
		// Requests sharing a key send one of two notes: the same note is a replay (201 with the
		// first id), the other a reuse (422); concurrent ones race for the key.
		note = notePayload{Title: fmt.Sprintf("pool %d", pool), Body: g.pick("one", "two")}
	}
	body, _ := json.Marshal(note)
	q := g.req("POST", "/api/notes")
	if key != "" {
		q.headers = append(q.headers, key)
	}
	if g.r.IntN(20) == 0 {
		q.headers = append(q.headers, "Expect: 100-continue")
	}
	q = g.withBody(q, g.pick("application/json", "application/json; charset=utf-8", "application/merge-patch+json"), body)
	f := g.done("valid post", q, true)
	f.post, f.note = true, body
	f.want = []int{201, 422}
	// A title is at most 160 characters and neither field may hold NUL: text never makes
	// either, so only a reused key may be refused.
	if pool < 0 {
		f.want = []int{201}
	}
	return f
}

// nearNote is a note body with a few mutations: keys in other cases and scripts, duplicates,
// values of other types, invalid UTF-8, surrogate escapes, truncation, trailing data, deep
// nesting; any content type.
func (g *gen) nearNote() *fuzzReq {
	body := []byte(fmt.Sprintf(`{"title":%s,"body":%s}`, jsonString(g.text(20)), jsonString(g.text(40))))
	for range 1 + g.r.IntN(3) {
		body = g.mutate(body)
	}
	q := g.req("POST", "/api/notes")
	if g.r.IntN(4) == 0 {
		q.method, q.target = "PATCH", "/api/notes/"+g.noteID()
	}
	ct := g.contentType()
	q = g.withBody(q, ct, body)
	f := g.done("near note", q, true)
	f.post, f.note = q.method == "POST", body
	return f
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func (g *gen) mutate(b []byte) []byte {
	switch g.r.IntN(14) {
	case 0: // another spelling of a key
		return bytes.Replace(b, []byte(`"title"`), []byte(`"`+g.pick("Title", "TITLE", "tıtle", "title ", "tİtle", `\u0074itle`, "tit\u017fle", "TİTLE", "titlé", "")+`"`), 1)
	case 1: // a second member named like the first
		return bytes.Replace(b, []byte(`{`), []byte(`{"`+g.pick("title", "TITLE", "Title", "body", "BODY", "bOdY")+`":"dup",`), 1)
	case 2: // a value of another type
		return bytes.Replace(b, []byte(`"body":`), []byte(`"body":`+g.pick("1", "-0", "1e999999", "true", "null", "[]", "{}", `["a"]`, `{"a":1}`, `""`)+`,"x":`), 1)
	case 3: // invalid UTF-8 inside a string
		k := bytes.IndexByte(b, ':') + 2
		return slices.Insert(b, min(k, len(b)), []byte(g.pick("\xff", "\xc3\x28", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\x80"))...)
	case 4: // escapes: lone and paired surrogates, NUL, others
		k := bytes.IndexByte(b, ':') + 2
		return slices.Insert(b, min(k, len(b)), []byte(g.pick(`\ud800`, `\udc00`, `\ud83d\ude00`, `\u0000`, `\uDBFF\uDFFF`, `\x41`, `\'`, `\u12`, `\/`))...)
	case 5: // truncated
		return b[:g.r.IntN(len(b)+1)]
	case 6: // data after the object
		return append(b, g.pick("}", " x", "\x00", `{"title":"b"}`, "\n", " ", ",")...)
	case 7: // deep nesting in an extra member
		d := 1 + g.r.IntN(20000)
		return bytes.Replace(b, []byte(`{`), []byte(`{"deep":`+strings.Repeat("[", d)+strings.Repeat("]", d)+`,`), 1)
	case 8: // a random byte replaced
		if len(b) > 0 {
			b[g.r.IntN(len(b))] = byte(g.r.IntN(256))
		}
		return b
	case 9: // a byte-order mark or whitespace in front
		return append([]byte(g.pick("\xef\xbb\xbf", " \t\r\n", "\x00")), b...)
	case 10: // a long title (over 160 characters)
		return bytes.Replace(b, []byte(`"title":"`), []byte(`"title":"`+strings.Repeat("é", 150+g.r.IntN(30))), 1)
	case 11: // not an object
		return []byte(g.pick(`[]`, `"title"`, `null`, `1`, ``, `{`, `{"title"}`, `{"title":}`, `{,}`, `{"a":1,}`))
	case 12: // many members
		var extra strings.Builder
		for k := range g.r.IntN(2000) {
			fmt.Fprintf(&extra, `"k%d":%d,`, k, k)
		}
		return bytes.Replace(b, []byte(`{`), []byte(`{`+extra.String()), 1)
	default: // whitespace-only or empty title
		return bytes.Replace(b, []byte(`"title":`), []byte(`"title":`+g.pick(`"   "`, `""`, `"\t"`, `null`)+`,"t":`), 1)
	}
}

func (g *gen) contentType() string {
	if g.r.IntN(10) < 6 {
		return "application/json"
	}
	return g.pick("", "application/json; charset=utf-8", "APPLICATION/JSON", "application/problem+json", "application/json;", "application/json; charset=\"",
		"text/plain", "text/json", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/jsonx", "application/+json",
		"application/json\x01", "application/json, text/plain", "*/*", "application/json; charset=latin1", strings.Repeat("a", 3000))
}

// metricsTargets are the spellings of /metrics the issue names.
var metricsTargets = []string{
	"/metrics", "//metrics", "/%6detrics", "/%6Detrics", "/metrics;x", "/METRICS", "/Metrics", "/api/../metrics", "/./metrics",
	"/metrics/", "/metrics?x=1", "/metrics#x", "/metrics%2F", "/%2Fmetrics", "/metrics/.", "/metrics/..", "/metrics.", "/metrics%20",
	"/metrics%00", "/metrics%3F", "/metrics\t", "/api/notes/../../metrics", "/%2e/metrics", "/%2e%2e/metrics", "/x/%2e%2e/metrics",
	"/metric%73", "/%6d%65%74%72%69%63%73", "///metrics", "/metrics//", "/./././metrics", "/api/%2e%2e/metrics", "/debug/pprof/",
	"/debug/../metrics", "/metrics%2f..%2f", "\\metrics", "/\\metrics", "/metrics\\", "/.%2e/metrics", "metrics", "*",
}

// metrics is a request for /metrics spelt some way: from the list, or built from random
// percent-encoding, case, dot segments, slashes and suffixes; also in absolute form.
func (g *gen) metrics() *fuzzReq {
	target := metricsTargets[g.r.IntN(len(metricsTargets))]
	if g.r.IntN(2) == 0 {
		var b strings.Builder
		b.WriteString(g.pick("/", "//", "/./", "/api/../", "/x/../", "/%2e/", "/api/notes/../../", "/%2F", "/;/", "/..;/"))
		for _, c := range "metrics" {
			switch g.r.IntN(6) {
			case 0:
				fmt.Fprintf(&b, "%%%02x", c)
			case 1:
				fmt.Fprintf(&b, "%%%02X", c)
			case 2:
				b.WriteRune(c - 'a' + 'A')
			default:
				b.WriteRune(c)
			}
		}
		b.WriteString(g.pick("", "", "/", ";x", "?a=b", "#f", ".", "/.", "/..", "%2f", "//", "/x", ";", "%20", "%09", "?"))
		target = b.String()
	}
	if g.r.IntN(10) == 0 {
		target = "http://" + g.env.host + target
	}
	method := g.pick("GET", "GET", "GET", "HEAD", "POST", "OPTIONS", "PUT", "DELETE")
	q := g.req(method, target)
	if g.r.IntN(5) == 0 {
		q.headers = append(q.headers, "Accept-Encoding: gzip", "Accept: text/plain;version=0.0.4")
	}
	return g.done("metrics", q, true)
}

// path is a random path: segments of names, dot segments, encoded slashes and dots, other
// scripts, raw bytes; some longer than nginx's header buffers.
func (g *gen) path() *fuzzReq {
	segments := []string{"api", "notes", "1", "..", ".", "", "metrics", "healthz", "readyz", "%2e%2e", "%2f", "%2F", "%252e", "%00", "%ff",
		"日本", "%E6%97%A5", "\xff", "\x01", " ", "%20", ";", "a;b=c", "?", "&", "=", "+", "~", "@", ":", "'", "\"", "<x>", "{}", "|", "^", "`"}
	var b strings.Builder
	for range 1 + g.r.IntN(8) {
		b.WriteString(g.pick("/", "/", "//", "\\"))
		b.WriteString(segments[g.r.IntN(len(segments))])
	}
	clean := true
	if g.r.IntN(25) == 0 {
		n := 1000 + g.r.IntN(20000)
		b.WriteString("/" + strings.Repeat(g.pick("a", "%2e", "../", "x/"), n/3))
		// Over nginx's 8k buffers the request is refused before nginx reads all of it: it may
		// reset the connection under its own answer.
		clean = b.Len() < 4000
	}
	if g.r.IntN(3) == 0 {
		b.WriteString("?" + g.pick("limit=1", "a=%zz", "a=\xff", "cursor=..", "&&&", "a[]=1", strings.Repeat("q", 100)))
	}
	q := g.req(g.pick("GET", "GET", "HEAD", "POST", "DELETE"), b.String())
	return g.done("path", q, clean)
}

// headers is ordinary read or write traffic with hostile headers: huge, many, duplicated,
// control characters in X-Request-ID and Idempotency-Key, bad Host, bare line feeds.
func (g *gen) headers() *fuzzReq {
	post := g.r.IntN(2) == 0
	q := g.req("GET", "/api/notes?limit=5")
	var note []byte
	if post {
		note, _ = json.Marshal(notePayload{Title: g.plainText(5), Body: g.plainText(10)})
		q.method, q.target = "POST", "/api/notes"
	}
	clean, want := true, []int{200}
	if post {
		want = []int{201}
	}
	switch g.r.IntN(12) {
	case 0: // one huge header
		n := 100 + g.r.IntN(40000)
		q.headers = append(q.headers, g.pick("X-Big", "Cookie", "User-Agent", "Referer", "X-Request-ID")+": "+strings.Repeat("v", n))
		want, clean = nil, n < 4000
	case 1: // many headers
		for k := range 10 + g.r.IntN(150) {
			q.headers = append(q.headers, fmt.Sprintf("X-Fz-%d: %s", k, strings.Repeat("h", g.r.IntN(100))))
		}
		want, clean = nil, false
	case 2: // X-Request-ID repeated
		for range 2 + g.r.IntN(3) {
			q.headers = append(q.headers, "X-Request-ID: "+g.pick("abc", "fz-1", "a b", "x\x01y", strings.Repeat("r", 200), ""))
		}
	case 3: // control and non-ASCII bytes in X-Request-ID
		q.headers = append(q.headers, "X-Request-ID: "+g.controlValue())
		want = nil
	case 4: // Idempotency-Key with control or non-ASCII bytes, or repeated
		if !post {
			q.method, q.target = "POST", "/api/notes"
			note, _ = json.Marshal(notePayload{Title: g.plainText(5)})
		}
		q.headers = append(q.headers, "Idempotency-Key: "+g.controlValue())
		if g.r.IntN(3) == 0 {
			q.headers = append(q.headers, fmt.Sprintf("Idempotency-Key: fz-%d-dup-%d", g.env.seed, g.i))
		}
		want = nil
	case 5: // Host: missing, repeated, malformed
		switch g.r.IntN(3) {
		case 0:
			q.headers = q.headers[1:]
			want = []int{400}
		case 1:
			q.headers = append(q.headers, "Host: other.example")
			want = []int{400}
		default:
			q.headers[0] = "Host: " + g.pick("a b", "x/../y", "[::1", "ex\x01ample", "..", strings.Repeat("h", 300), "notes.test:99999", "")
			want = nil
		}
	case 6: // forwarding headers a client may not set
		q.headers = append(q.headers, "X-Forwarded-For: "+g.pick("6.6.6.6", "127.0.0.1, 10.0.0.1", "junk", strings.Repeat("1.", 500)),
			"X-Real-IP: 6.6.6.6", "Forwarded: for=6.6.6.6;proto=https", "X-Forwarded-Proto: "+g.pick("https", "gopher", "\x7f"))
	case 7: // invalid header names and folded lines
		q.headers = append(q.headers, g.pick("X Bad: 1", "X\x01Bad: 1", ": empty", "X-Bad : 1", "X-Fold: a\r\n b", "\x7f: 1", "X-Ünicode: 1"))
		want = nil
	case 8: // bare line feeds
		q.eol = "\n"
	case 9: // Connection, Upgrade and other hop-by-hop headers
		q.headers = append(q.headers, g.pick("Connection: close", "Connection: Upgrade", "Connection: keep-alive, X-Secret", "TE: trailers"),
			g.pick("Upgrade: websocket", "Upgrade: h2c", "Keep-Alive: timeout=1", "Proxy-Connection: keep-alive"))
		want = nil
	case 10: // Authorization on open routes
		q.headers = append(q.headers, "Authorization: "+g.pick("Bearer "+g.env.token, "Bearer wrong", "Basic Zm9vOmJhcg==", "Bearer", strings.Repeat("t", 3000)))
	default: // Content-Type repeated or odd
		q.headers = append(q.headers, "Content-Type: "+g.contentType(), "Accept: "+g.pick("*/*", "text/html", "application/xml", "\x01"))
		want = nil
	}
	if note != nil {
		q = g.withBody(q, "application/json", note)
	}
	f := g.done("headers", q, clean)
	f.want = want
	if post {
		f.post, f.note = true, note
	}
	return f
}

// controlValue is a header value with control characters, non-ASCII bytes, spaces or nothing.
func (g *gen) controlValue() string {
	bad := []string{"\x00", "\x01", "\x1f", "\x7f", "\x80", "\xff", "\t", "\x0b", "\x0c", " ", "\r", "\xc3\xa9", "\"", "\\", ",", ";"}
	var b strings.Builder
	b.WriteString("k")
	for range 1 + g.r.IntN(4) {
		b.WriteString(bad[g.r.IntN(len(bad))])
		b.WriteString("v")
	}
	switch g.r.IntN(5) {
	case 0:
		return ""
	case 1:
		return strings.Repeat("k", 250+g.r.IntN(10))
	}
	return b.String()
}

// framing is a POST with a contradictory, malformed or incomplete body framing: Content-Length
// and Transfer-Encoding together, codings nginx does not implement, bad chunks, bad or
// repeated lengths, bodies shorter or longer than declared (the rest is a smuggled request).
// Each gets a connection of its own.
func (g *gen) framing() *fuzzReq {
	note, _ := json.Marshal(notePayload{Title: g.plainText(4), Body: g.plainText(8)})
	q := g.req("POST", "/api/notes")
	q.headers = append(q.headers, "Content-Type: application/json")
	f := &fuzzReq{family: "framing", post: true}
	smuggled := raw{method: g.pick("GET", "HEAD", "POST"), target: metricsTargets[g.r.IntN(len(metricsTargets))], proto: "HTTP/1.1",
		headers: []string{"Host: " + g.env.host}}
	cl := func(n int) string { return "Content-Length: " + strconv.Itoa(n) }
	switch g.r.IntN(12) {
	default: // Content-Length and chunked: the chunks are the body, or nginx refuses
		q.headers = append(q.headers, cl(len(note)/2), "Transfer-Encoding: chunked")
		q.body, f.note = g.chunked(note), note
	case 1: // codings nginx does not implement: 501
		q.headers = append(q.headers, "Transfer-Encoding: "+g.pick("gzip", "gzip, chunked", "identity", "chunked, identity", "x", "chunked, chunked", "deflate"))
		q.body, f.allow = g.chunked(note), http.StatusNotImplemented
	case 2: // bad chunk sizes and framing
		q.headers = append(q.headers, "Transfer-Encoding: chunked")
		q.body = []byte(g.pick("zz\r\nabc\r\n0\r\n\r\n", "-1\r\nabc\r\n0\r\n\r\n", "0x3\r\nabc\r\n0\r\n\r\n", "ffffffffffffffffffff\r\nabc\r\n",
			"5\r\nabc\r\n0\r\n\r\n", "3\r\nabcdef\r\n0\r\n\r\n", "3\nabc\n0\n\n", "3\r\nabc", "3 \r\nabc\r\n0\r\n\r\n", "\r\n\r\n"))
	case 3: // lengths that are not a number, or repeated
		q.headers = append(q.headers, g.pick("Content-Length: -1", "Content-Length: +"+strconv.Itoa(len(note)), "Content-Length: abc",
			"Content-Length: 1e3", "Content-Length: ", "Content-Length: 99999999999999999999", "Content-Length: 0x10",
			cl(len(note))+"\r\n"+cl(len(note)), cl(len(note))+"\r\n"+cl(len(note)+1), "Content-Length: "+strconv.Itoa(len(note))+", "+strconv.Itoa(len(note))))
		q.body = note
	case 4, 5: // a body that ends before the declared length: the rest is the start of the
		// request that follows (the sentinel), so nginx gets a broken body and then junk
		// rather than waiting for bytes that never come
		q.headers = append(q.headers, cl(len(note)+1+g.r.IntN(len(sentinel)-1)))
		q.body = note
	case 6, 7: // a request smuggled after the declared body
		q.headers = append(q.headers, cl(len(note)))
		q.body, f.note = append(note, smuggled.bytes()...), note
	case 8: // no length at all: the body is the next request
		q.body = append(note, smuggled.bytes()...)
	case 9: // Transfer-Encoding spelt so that a lax parser misses it
		q.headers = append(q.headers, cl(len(note)), g.pick("Transfer-Encoding : chunked", "Transfer-Encoding:\tchunked", "Transfer-Encoding: Chunked",
			"Transfer-encoding: chunked", "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked", " Transfer-Encoding: chunked", "Transfer-Encoding: \"chunked\""))
		// Where nginx takes the chunks as the body it is the note; where it takes the length, the
		// body starts with a chunk size, which the service refuses.
		q.body, f.note, f.allow = g.chunked(note), note, http.StatusNotImplemented // for "chunked" in quotes
	case 10: // chunked in HTTP/1.0
		q.proto = "HTTP/1.0"
		q.headers = append(q.headers, "Transfer-Encoding: chunked")
		q.body, f.note = g.chunked(note), note
	case 11: // a body far over the limit, declared or chunked (rarely: 1 to 2 MiB each)
		if g.r.IntN(8) > 0 {
			q.headers = append(q.headers, cl(len(note)))
			q.body, f.note = note, note
			break
		}
		big := bytes.Repeat([]byte("b"), (1<<20)+1+g.r.IntN(1<<20))
		if g.r.IntN(2) == 0 {
			q.headers = append(q.headers, cl(len(big)))
			q.body = big
		} else {
			q.headers = append(q.headers, "Transfer-Encoding: chunked")
			q.body = g.bigChunks(big)
		}
		f.post = false
	}
	f.method, f.wire = q.method, q.bytes()
	return f
}

// modify is PATCH and DELETE with and without the token, on notes that existed before the run
// or none. The token's attempts are rate-limited per address (429).
func (g *gen) modify() *fuzzReq {
	q := g.req(g.pick("PATCH", "DELETE"), "/api/notes/"+g.noteID())
	good := false
	switch g.r.IntN(6) {
	case 0:
	case 1, 2:
		q.headers = append(q.headers, "Authorization: Bearer "+g.env.token)
		good = true
	case 3:
		q.headers = append(q.headers, "Authorization: "+g.pick("Bearer wrong-token-0123456789", "Basic "+g.env.token, "Bearer", "Bearer "+g.env.token+"x",
			"Bearer "+g.env.token[:len(g.env.token)-1]))
	case 4:
		q.headers = append(q.headers, "Authorization: Bearer "+g.env.token, "Authorization: Bearer "+g.env.token)
	default:
		q.headers = append(q.headers, "Authorization: "+g.pick("bearer ", "BEARER ", "Bearer  ")+g.env.token)
		good = true // the scheme is case-insensitive (RFC 9110); extra spaces are tolerated
	}
	if q.method == "PATCH" {
		body := g.pick(`{"title":"patched by the fuzz"}`, `{"body":"patched"}`, `{"title":null}`, `{}`, `{"title":""}`, `[]`, `{"title":1}`, `not json`)
		q = g.withBody(q, "application/json", []byte(body))
	}
	f := g.done("modify", q, true)
	if !good {
		f.want = []int{400, 401, 429} // nginx refuses a repeated Authorization with 400
	}
	return f
}

// method is an unusual or invalid method on a known route.
func (g *gen) method() *fuzzReq {
	method := g.pick("OPTIONS", "TRACE", "CONNECT", "PROPFIND", "MKCOL", "LOCK", "PUT", "QUERY", "BREW", "M-SEARCH", "get", "Get",
		"GE T", "GET\x00", "G\xc3\xa9T", strings.Repeat("X", 1+g.r.IntN(2000)), "PATCH", "DELETE", "HEAD", "", "POST\t")
	target := g.pick("/", "/api/notes", "/api/notes/1", "/metrics", "/healthz", "*", g.env.host, "http://"+g.env.host+"/api/notes")
	q := g.req(method, target)
	if g.r.IntN(3) == 0 {
		q = g.withBody(q, "application/json", []byte(`{"title":"via `+url.QueryEscape(method)+`"}`))
	}
	return g.done("method", q, len(method) < 1000)
}

// version is an HTTP/0.9 request line, HTTP/1.0, or a version nginx does not speak.
func (g *gen) version() *fuzzReq {
	target := g.pick("/", "/api/notes?limit=1", "/metrics", "/%6detrics", "//metrics", "/healthz")
	f := &fuzzReq{family: "version", method: "GET"}
	q := g.req("GET", target)
	switch v := g.r.IntN(4); v {
	case 0:
		q.proto = ""
	case 1:
		q.proto = "HTTP/1.0"
		if g.r.IntN(2) == 0 {
			q.headers = nil
		}
		f.clean = true
	default:
		q.proto = g.pick("HTTP/2.0", "HTTP/3.0", "HTTP/9.9", "HTTP/1.2", "HTTP/1.10", "HTTP/01.1", "http/1.1", "HTTP/1", "HTTP/1.1 x", "HTTP/1.1\x00", "HTTP/", "HTTP/1.1/1")
		if len(q.proto) > 5 && q.proto[5] >= '2' && q.proto[5] <= '9' {
			f.allow = http.StatusHTTPVersionNotSupported
		}
	}
	f.wire = q.bytes()
	return f
}

// randomBody is a random JSON value or random bytes as the body of a write.
func (g *gen) randomBody() *fuzzReq {
	var body []byte
	if g.r.IntN(2) == 0 {
		body = g.randomJSON(4)
	} else {
		body = make([]byte, g.r.IntN(3000))
		for k := range body {
			body[k] = byte(g.r.IntN(256))
		}
	}
	q := g.req(g.pick("POST", "POST", "PATCH", "PUT"), g.pick("/api/notes", "/api/notes/1", "/api/notes/"))
	q = g.withBody(q, g.contentType(), body)
	f := g.done("random body", q, true)
	f.post, f.note = q.method == "POST" && q.target == "/api/notes", body
	return f
}

func (g *gen) randomJSON(depth int) []byte {
	var b bytes.Buffer
	var value func(d int)
	value = func(d int) {
		switch k := g.r.IntN(8); {
		case k == 0 && d > 0:
			b.WriteByte('{')
			for n := range g.r.IntN(5) {
				if n > 0 {
					b.WriteByte(',')
				}
				b.WriteString(jsonString(g.pick("title", "body", "Title", "BODY", "x", "", g.text(5))))
				b.WriteByte(':')
				value(d - 1)
			}
			b.WriteByte('}')
		case k == 1 && d > 0:
			b.WriteByte('[')
			for n := range g.r.IntN(5) {
				if n > 0 {
					b.WriteByte(',')
				}
				value(d - 1)
			}
			b.WriteByte(']')
		case k == 2:
			b.WriteString(g.pick("true", "false", "null", "0", "-1.5e300", "1e-400", "123456789012345678901234567890"))
		default:
			b.WriteString(jsonString(g.text(30)))
		}
	}
	if g.r.IntN(3) > 0 {
		// mostly objects, so the body gets past the first check
		b.WriteString(`{"title":`)
		value(depth)
		b.WriteString(`,"body":`)
		value(depth)
		b.WriteByte('}')
	} else {
		value(depth)
	}
	return b.Bytes()
}
