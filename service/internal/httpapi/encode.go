package httpapi

import (
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/notes-stack/notes/service/internal/notes"
)

// writeBody is the one writer of response bodies: it sets Content-Type and
// Content-Length before WriteHeader and writes b in one call, so net/http
// neither sniffs the type nor switches to chunked encoding (streaming a
// list page above net/http's 4 KiB buffer cost extra write syscalls, the
// profile's largest item). A HEAD response gets the same headers and no
// body.
func writeBody(c echo.Context, status int, contentType string, b []byte) error {
	h := c.Response().Header()
	h.Set(echo.HeaderContentType, contentType)
	h.Set(echo.HeaderContentLength, strconv.Itoa(len(b)))
	c.Response().WriteHeader(status)
	if c.Request().Method == http.MethodHead {
		return nil
	}
	_, err := c.Response().Write(b)
	return err
}

// writeJSON writes v as a JSON body (small values; notes go through
// writeNotes).
func writeJSON(c echo.Context, status int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return writeBody(c, status, echo.MIMEApplicationJSON, append(b, '\n'))
}

// The list endpoint spends most of its CPU encoding notes. These appenders
// write a note as the JSON object {"id","title","body","created_at"}, the
// same bytes encoding/json would write for a struct with those fields
// (minus its HTML escaping, which JSON does not need), without reflection
// or intermediate strings. The fuzz test reads every acknowledged note back
// through them.

const createdAtLayout = "2006-01-02T15:04:05.000000Z07:00"

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 8<<10); return &b }}

func appendNote(b []byte, n notes.Note) []byte {
	b = append(b, `{"id":`...)
	b = strconv.AppendInt(b, n.ID, 10)
	b = append(b, `,"title":`...)
	b = appendJSONString(b, n.Title)
	b = append(b, `,"body":`...)
	b = appendJSONString(b, n.Body)
	b = append(b, `,"created_at":"`...)
	b = appendCreatedAt(b, n.CreatedAt)
	return append(b, `"}`...)
}

// appendCreatedAt appends t in UTC as createdAtLayout would, digit by digit:
// time.AppendFormat re-parses the layout on every call, which was 8% of
// the list endpoint's CPU. Years outside 1..9999 take the general path.
func appendCreatedAt(b []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	if year < 1 || year > 9999 {
		return t.AppendFormat(b, createdAtLayout)
	}
	hour, min, sec := t.Clock()
	us := t.Nanosecond() / 1000
	b = appendDigits(b, year, 4)
	b = append(b, '-')
	b = appendDigits(b, int(month), 2)
	b = append(b, '-')
	b = appendDigits(b, day, 2)
	b = append(b, 'T')
	b = appendDigits(b, hour, 2)
	b = append(b, ':')
	b = appendDigits(b, min, 2)
	b = append(b, ':')
	b = appendDigits(b, sec, 2)
	b = append(b, '.')
	b = appendDigits(b, us, 6)
	return append(b, 'Z')
}

// appendDigits appends the low width decimal digits of v (v >= 0), zero-padded.
func appendDigits(b []byte, v, width int) []byte {
	n := len(b) + width
	b = append(b, "000000"[:width]...)
	for i := n - 1; i >= n-width; i-- {
		b[i] = byte('0' + v%10)
		v /= 10
	}
	return b
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string. Invalid UTF-8 (which the
// write path rejects, so only legacy rows could hold it) becomes U+FFFD, as
// with encoding/json; U+2028 and U+2029 are escaped for JavaScript embedding.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// writeNotes writes a JSON array of notes in one write with a Content-Length.
func writeNotes(c echo.Context, status int, list []notes.Note, single bool) error {
	bp := bufPool.Get().(*[]byte)
	b := (*bp)[:0]
	if single {
		b = appendNote(b, list[0])
	} else {
		b = append(b, '[')
		for i, n := range list {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendNote(b, n)
		}
		b = append(b, ']')
	}
	b = append(b, '\n')
	err := writeBody(c, status, echo.MIMEApplicationJSON, b)
	if cap(b) <= 1<<20 { // do not keep huge buffers around
		*bp = b
		bufPool.Put(bp)
	}
	return err
}
