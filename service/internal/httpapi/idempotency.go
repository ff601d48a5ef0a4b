package httpapi

import (
	"net/http"
	"strings"

	"github.com/notes-stack/notes/service/internal/notes"
)

// Idempotency-Key (draft-ietf-httpapi-idempotency-key-header) on POST
// /api/notes: a retried request with the same key and payload gets the
// first answer again, marked with headerIdempotentReplayed.
const (
	headerIdempotencyKey     = "Idempotency-Key"
	headerIdempotentReplayed = "Idempotent-Replayed"
)

var (
	errInvalidIdempotencyKey = notes.Errorf(notes.EINVALID,
		"Idempotency-Key header must be 1 to %d visible ASCII characters (0x21-0x7E), optionally as a quoted string",
		notes.MaxIdempotencyKeyLen)
	errIdempotencyKeyReused = notes.Errorf(notes.EUNPROCESS, "Idempotency-Key reused with a different request")
)

// idempotencyKey returns the request's key and whether it sent one. The
// value is either the key itself or the draft's structured-field string
// ("key", with \" and \\ escapes), whose inner value is the key. A key is
// 1 to notes.MaxIdempotencyKeyLen visible ASCII characters; an empty,
// repeated or malformed header is an EINVALID error.
func idempotencyKey(h http.Header) (string, bool, error) {
	vals := h.Values(headerIdempotencyKey)
	switch len(vals) {
	case 0:
		return "", false, nil
	case 1:
	default:
		return "", true, errInvalidIdempotencyKey
	}
	key := vals[0]
	if strings.HasPrefix(key, `"`) {
		var ok bool
		if key, ok = unquoteSFString(key); !ok {
			return "", true, errInvalidIdempotencyKey
		}
	}
	if len(key) < 1 || len(key) > notes.MaxIdempotencyKeyLen {
		return "", true, errInvalidIdempotencyKey
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x21 || key[i] > 0x7e {
			return "", true, errInvalidIdempotencyKey
		}
	}
	return key, true, nil
}

// unquoteSFString parses an RFC 8941 sf-string: DQUOTE *(unescaped /
// "\" DQUOTE / "\" "\") DQUOTE, nothing after it.
func unquoteSFString(s string) (string, bool) {
	if len(s) < 2 || s[0] != '"' {
		return "", false
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			i++
			if i >= len(s) || (s[i] != '"' && s[i] != '\\') {
				return "", false
			}
			b.WriteByte(s[i])
		case c == '"':
			return b.String(), i == len(s)-1
		case c < 0x20 || c > 0x7e:
			return "", false
		default:
			b.WriteByte(c)
		}
	}
	return "", false // no closing quote
}
