// Package notes is the domain at the centre of the service: the Note type,
// its validation, list cursors and the error type with codes. It knows
// nothing about HTTP or SQL.
package notes

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// maxTitleChars is the longest title, in characters (Unicode code points),
// not bytes. The column is varchar(160), which counts characters too.
const maxTitleChars = 160

// defaultTitle replaces a missing, empty or all-whitespace title.
const defaultTitle = "Untitled"

// MaxIdempotencyKeyLen is the longest idempotency key, in bytes (keys are
// visible ASCII). The column's CHECK enforces the same limit.
const MaxIdempotencyKeyLen = 255

// List limits.
const (
	DefaultLimit = 50
	MaxLimit     = 200
)

// Note is one stored note.
type Note struct {
	ID        int64
	Title     string
	Body      string
	CreatedAt time.Time
}

// Error codes. The HTTP layer maps each to one status in one table.
const (
	EINVALID      = "invalid"       // malformed request: bad id, cursor, limit (400)
	EUNPROCESS    = "unprocessable" // well-formed but invalid content (422)
	EUNAUTHORIZED = "unauthorized"  // a write without a valid API token (401)
	ENOTFOUND     = "not_found"     // no such note (404)
	EUNAVAILABLE  = "unavailable"   // database unreachable or failing (503)
	EINTERNAL     = "internal"      // a bug (500)
)

// Error is the domain error: a code plus a message safe to show to clients.
type Error struct {
	Code    string
	Message string
	Err     error // underlying cause, never shown to clients
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL
// for any other error and "" for nil.
func ErrorCode(err error) string {
	var e *Error
	switch {
	case err == nil:
		return ""
	case errors.As(err, &e):
		return e.Code
	default:
		return EINTERNAL
	}
}

// Input is what a client may set on a note. A nil field is absent.
type Input struct {
	Title *string
	Body  *string
}

// NewNote validates in and returns the title and body to store: a missing,
// empty or whitespace-only title becomes "Untitled", a missing body "".
// Errors are EUNPROCESS.
func NewNote(in Input) (title, body string, err error) {
	title, body = defaultTitle, ""
	if in.Title != nil {
		title = normalizeTitle(*in.Title)
	}
	if in.Body != nil {
		body = *in.Body
	}
	if err := validateTitle(title); err != nil {
		return "", "", err
	}
	if err := validateText("body", body); err != nil {
		return "", "", err
	}
	return title, body, nil
}

// normalizeTitle maps an empty or whitespace-only title to defaultTitle and
// leaves any other title exactly as given.
func normalizeTitle(t string) string {
	if strings.TrimSpace(t) == "" {
		return defaultTitle
	}
	return t
}

// validateTitle checks text rules and the length in characters.
func validateTitle(t string) error {
	if err := validateText("title", t); err != nil {
		return err
	}
	if n := utf8.RuneCountInString(t); n > maxTitleChars {
		return Errorf(EUNPROCESS, "title is %d characters long; the maximum is %d", n, maxTitleChars)
	}
	return nil
}

// validateText rejects invalid UTF-8 and NUL characters (Postgres text
// cannot store NUL).
func validateText(field, s string) error {
	if !utf8.ValidString(s) {
		return Errorf(EUNPROCESS, "%s is not valid UTF-8", field)
	}
	if strings.IndexByte(s, 0) >= 0 {
		return Errorf(EUNPROCESS, "%s contains a NUL character", field)
	}
	return nil
}

// Patch is a partial update. A nil field is left unchanged.
type Patch struct {
	Title *string
	Body  *string
}

// Validate normalises and validates the fields present in p.
func (p *Patch) Validate() error {
	if p.Title != nil {
		t := normalizeTitle(*p.Title)
		if err := validateTitle(t); err != nil {
			return err
		}
		p.Title = &t
	}
	if p.Body != nil {
		if err := validateText("body", *p.Body); err != nil {
			return err
		}
	}
	return nil
}

// Cursor is a position in the newest-first order: the list continues with
// notes strictly older than (CreatedAt, ID).
type Cursor struct {
	CreatedAt time.Time
	ID        int64
}

// Encode returns the opaque form: base64url of 8 bytes of microseconds since
// the Unix epoch and 8 bytes of id.
func (c Cursor) Encode() string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(c.CreatedAt.UnixMicro()))
	binary.BigEndian.PutUint64(b[8:], uint64(c.ID))
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// DecodeCursor parses the opaque form; errors are EINVALID.
func DecodeCursor(s string) (Cursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != 16 {
		return Cursor{}, Errorf(EINVALID, "cursor is not valid")
	}
	us := int64(binary.BigEndian.Uint64(b[:8]))
	id := int64(binary.BigEndian.Uint64(b[8:]))
	// Postgres timestamptz covers 4713 BC to 294276 AD; stay well inside.
	const maxMicros = 200_000 * 365 * 24 * 3600 * 1_000_000
	if id <= 0 || us < -maxMicros/100 || us > maxMicros {
		return Cursor{}, Errorf(EINVALID, "cursor is not valid")
	}
	return Cursor{CreatedAt: time.UnixMicro(us).UTC(), ID: id}, nil
}

// Page is one page of the newest-first list.
type Page struct {
	Notes []Note
	// Next is set when more notes follow.
	Next *Cursor
}

// Store is what the service needs from persistence. Methods return *Error
// with ENOTFOUND for a missing note, EUNPROCESS for content the database
// rejects and EUNAVAILABLE when the database cannot be reached.
type Store interface {
	Create(ctx context.Context, title, body string) (Note, error)
	// CreateIdempotent is Create under an idempotency key. When a note with
	// key already exists it inserts nothing and returns that note as stored
	// (whatever its title and body) with created false; comparing them with
	// the request is the caller's job. Concurrent calls with one key create
	// one note and all return it. A key is freed when its note is deleted.
	CreateIdempotent(ctx context.Context, key, title, body string) (n Note, created bool, err error)
	Get(ctx context.Context, id int64) (Note, error)
	List(ctx context.Context, after *Cursor, limit int) (Page, error)
	Update(ctx context.Context, id int64, p Patch) (Note, error)
	Delete(ctx context.Context, id int64) error
	Ping(ctx context.Context) error
}
