package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/notes-stack/notes/service/internal/notes"
)

// errUnsupportedMedia is the 415 of the decoding step (not a domain error).
var errUnsupportedMedia = &echo.HTTPError{Code: http.StatusUnsupportedMediaType,
	Message: "Content-Type must be application/json"}

// decodeJSON reads a JSON object into dst, enforcing the content type
// (415), the body limit (413: always an *http.MaxBytesError, also when the
// declared Content-Length is already too large), well-formed JSON (400) and
// text that Postgres can store exactly (422: invalid UTF-8, lone UTF-16
// surrogate escapes, which encoding/json would silently turn into U+FFFD).
func (s *server) decodeJSON(c echo.Context, dst any) error {
	r := c.Request()
	if !isJSONContentType(r.Header.Get(echo.HeaderContentType)) {
		return errUnsupportedMedia
	}
	if r.ContentLength > s.maxBody {
		return &http.MaxBytesError{Limit: s.maxBody}
	}
	data, err := io.ReadAll(http.MaxBytesReader(c.Response(), r.Body, s.maxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return notes.Errorf(notes.EINVALID, "could not read the request body")
	}
	if !utf8.Valid(data) {
		return notes.Errorf(notes.EUNPROCESS, "request body is not valid UTF-8")
	}
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return notes.Errorf(notes.EINVALID, "request body must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(dst); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return notes.Errorf(notes.EINVALID, "field %q must be a string", typeErr.Field)
		}
		return notes.Errorf(notes.EINVALID, "malformed JSON")
	}
	if _, err := dec.Token(); err != io.EOF {
		return notes.Errorf(notes.EINVALID, "malformed JSON: data after the object")
	}
	if hasLoneSurrogate(data) {
		return notes.Errorf(notes.EUNPROCESS, "text contains an unpaired UTF-16 surrogate escape")
	}
	return nil
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
