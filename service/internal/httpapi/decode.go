package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/notes-stack/notes/service/internal/notes"
)

// errUnsupportedMedia is the 415 of the decoding step (not a domain error).
var errUnsupportedMedia = &echo.HTTPError{Code: http.StatusUnsupportedMediaType,
	Message: "Content-Type must be application/json"}

// member is one member of the request's JSON object: the key as sent and
// its raw value.
type member struct {
	key string
	raw json.RawMessage
}

// decodeObject reads the body as one JSON object and returns its members
// by foldKey of their keys, enforcing the content type (415), the body
// limit (413: always an *http.MaxBytesError, also when the declared
// Content-Length is already too large), well-formed JSON (400), keys that
// are unique even when case is ignored (400: encoding/json would match
// "title" and "TITLE" to one field and keep the last, so what the client
// and we read could differ) and text that Postgres can store exactly (422:
// invalid UTF-8, lone UTF-16 surrogate escapes, which encoding/json would
// silently turn into U+FFFD).
func (s *server) decodeObject(c echo.Context) (map[string]member, error) {
	r := c.Request()
	if !isJSONContentType(r.Header.Get(echo.HeaderContentType)) {
		return nil, errUnsupportedMedia
	}
	if r.ContentLength > s.maxBody {
		return nil, &http.MaxBytesError{Limit: s.maxBody}
	}
	data, err := io.ReadAll(http.MaxBytesReader(c.Response(), r.Body, s.maxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, err
		}
		return nil, notes.Errorf(notes.EINVALID, "could not read the request body")
	}
	if !utf8.Valid(data) {
		return nil, notes.Errorf(notes.EUNPROCESS, "request body is not valid UTF-8")
	}
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, notes.Errorf(notes.EINVALID, "request body must be a JSON object")
	}
	malformed := notes.Errorf(notes.EINVALID, "malformed JSON")
	dec := json.NewDecoder(bytes.NewReader(data))
	if _, err := dec.Token(); err != nil { // the '{'
		return nil, malformed
	}
	members := make(map[string]member)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, malformed
		}
		key := tok.(string) // inside an object, Token returns keys as strings
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, malformed
		}
		k := foldKey(key)
		if first, dup := members[k]; dup {
			if first.key == key {
				return nil, notes.Errorf(notes.EINVALID, "duplicate key %q", key)
			}
			return nil, notes.Errorf(notes.EINVALID, "keys %q and %q differ only in case; send one of them", first.key, key)
		}
		members[k] = member{key: key, raw: raw}
	}
	if _, err := dec.Token(); err != nil { // the '}'
		return nil, malformed
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, notes.Errorf(notes.EINVALID, "malformed JSON: data after the object")
	}
	if hasLoneSurrogate(data) {
		return nil, notes.Errorf(notes.EUNPROCESS, "text contains an unpaired UTF-16 surrogate escape")
	}
	return members, nil
}

// foldKey maps a key to one value for all the keys that encoding/json
// (which upper-cases each character) or Unicode simple case folding
// (strings.EqualFold: "k" and the Kelvin sign) consider equal to it.
func foldKey(key string) string {
	return strings.Map(func(r rune) rune {
		r = unicode.ToUpper(r)
		least := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			least = min(least, f)
		}
		return least
	}, key)
}

// stringField is a string member of the request object.
type stringField struct {
	present bool // the key was sent
	null    bool // its value was null
	value   string
}

// stringMember looks up field in members, matched as encoding/json matches
// a key to a field (strings.EqualFold: "TITLE" is title, "tıtle" is not),
// so the service reads what a standard decoder reads; foldKey, wider, only
// groups keys to refuse ambiguous ones. A value other than a string or null
// is EINVALID.
func stringMember(members map[string]member, field string) (stringField, error) {
	m, ok := members[foldKey(field)]
	if !ok || !strings.EqualFold(m.key, field) {
		return stringField{}, nil
	}
	if string(m.raw) == "null" {
		return stringField{present: true, null: true}, nil
	}
	var v string
	if err := json.Unmarshal(m.raw, &v); err != nil {
		return stringField{}, notes.Errorf(notes.EINVALID, "field %q must be a string", field)
	}
	return stringField{present: true, value: v}, nil
}

// isJSONContentType accepts application/json and application/*+json with
// any parameters.
func isJSONContentType(ct string) bool {
	if ct == "application/json" { // the common case, without ParseMediaType's map
		return true
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	return mt == "application/json" || (strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json"))
}

// hasLoneSurrogate reports whether valid JSON data contains a \uD800-\uDFFF
// escape that is not part of a high+low surrogate pair. Outside strings
// valid JSON has no backslashes, so a flat scan is enough.
func hasLoneSurrogate(data []byte) bool {
	hex := func(b []byte) (rune, bool) {
		if len(b) < 4 {
			return 0, false
		}
		var r rune
		for _, c := range b[:4] {
			switch {
			case '0' <= c && c <= '9':
				r = r<<4 | rune(c-'0')
			case 'a' <= c && c <= 'f':
				r = r<<4 | rune(c-'a'+10)
			case 'A' <= c && c <= 'F':
				r = r<<4 | rune(c-'A'+10)
			default:
				return 0, false
			}
		}
		return r, true
	}
	for i := 0; i < len(data); i++ {
		if data[i] != '\\' || i+1 >= len(data) {
			continue
		}
		if data[i+1] != 'u' {
			i++ // skip the escaped character (it may be a backslash)
			continue
		}
		r, ok := hex(data[i+2:])
		if !ok {
			return true
		}
		i += 5
		switch {
		case 0xDC00 <= r && r <= 0xDFFF:
			return true
		case 0xD800 <= r && r <= 0xDBFF:
			if i+2 >= len(data) || data[i+1] != '\\' || data[i+2] != 'u' {
				return true
			}
			lo, ok := hex(data[i+3:])
			if !ok || lo < 0xDC00 || lo > 0xDFFF {
				return true
			}
			i += 6
		}
	}
	return false
}
