package notes_test

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/notes-stack/notes/service/internal/notes"
)

func ptr(s string) *string { return &s }

func TestNewNote(t *testing.T) {
	tests := []struct {
		name             string
		in               notes.Input
		title, body, err string
	}{
		{"missing", notes.Input{}, "Untitled", "", ""},
		{"empty", notes.Input{Title: ptr("")}, "Untitled", "", ""},
		{"unicode space", notes.Input{Title: ptr("\u00a0\u3000\t")}, "Untitled", "", ""},
		{"kept exactly", notes.Input{Title: ptr(" a "), Body: ptr(" b ")}, " a ", " b ", ""},
		{"160 runes", notes.Input{Title: ptr(strings.Repeat("ß", 160))}, strings.Repeat("ß", 160), "", ""},
		{"161 runes", notes.Input{Title: ptr(strings.Repeat("ß", 161))}, "", "", notes.EUNPROCESS},
		{"invalid utf8 title", notes.Input{Title: ptr("a\xffb")}, "", "", notes.EUNPROCESS},
		{"invalid utf8 body", notes.Input{Body: ptr("\xc3")}, "", "", notes.EUNPROCESS},
		{"NUL title", notes.Input{Title: ptr("a\x00")}, "", "", notes.EUNPROCESS},
		{"NUL body", notes.Input{Body: ptr("\x00")}, "", "", notes.EUNPROCESS},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			title, body, err := notes.NewNote(tc.in)
			if got := notes.ErrorCode(err); got != tc.err {
				t.Fatalf("code = %q (%v), want %q", got, err, tc.err)
			}
			if err == nil && (title != tc.title || body != tc.body) {
				t.Errorf("got %q/%q", title, body)
			}
		})
	}
}

func TestPatchValidate(t *testing.T) {
	p := notes.Patch{Title: ptr("  ")}
	if err := p.Validate(); err != nil || *p.Title != "Untitled" {
		t.Errorf("blank title: %v %q", err, *p.Title)
	}
	p = notes.Patch{Body: ptr("\x00")}
	if notes.ErrorCode(p.Validate()) != notes.EUNPROCESS {
		t.Error("NUL body accepted")
	}
}

func TestCursorRoundTrip(t *testing.T) {
	for _, c := range []notes.Cursor{
		{CreatedAt: time.Date(2024, 1, 2, 3, 4, 5, 123456000, time.UTC), ID: 1},
		{CreatedAt: time.Unix(0, 0).UTC(), ID: 1<<63 - 1},
		{CreatedAt: time.Date(1970, 1, 1, 0, 0, 0, 1000, time.UTC), ID: 7},
	} {
		s := c.Encode()
		got, err := notes.DecodeCursor(s)
		if err != nil || !got.CreatedAt.Equal(c.CreatedAt) || got.ID != c.ID {
			t.Errorf("%+v -> %q -> %+v, %v", c, s, got, err)
		}
		if strings.ContainsAny(s, "+/=") {
			t.Errorf("cursor %q is not URL-safe", s)
		}
	}
}

func TestDecodeCursorRejects(t *testing.T) {
	for _, s := range []string{"", "!!!", "AAAA", "AAAAAAAAAAAAAAAAAAAAAA", // id 0
		"f_________wAAAAAAAAAB",                                   // wrong length
		notes.Cursor{CreatedAt: time.Unix(0, 0), ID: -5}.Encode(), // negative id
		base64.RawURLEncoding.EncodeToString([]byte{0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 1}), // year 294,000+
	} {
		_, err := notes.DecodeCursor(s)
		var e *notes.Error
		if !errors.As(err, &e) || e.Code != notes.EINVALID {
			t.Errorf("DecodeCursor(%q) = %v, want EINVALID", s, err)
		}
	}
}

func TestErrorCode(t *testing.T) {
	if notes.ErrorCode(nil) != "" || notes.ErrorCode(errors.New("x")) != notes.EINTERNAL {
		t.Error("ErrorCode of nil or plain error")
	}
	wrapped := errors.Join(errors.New("ctx"), notes.Errorf(notes.ENOTFOUND, "gone"))
	if notes.ErrorCode(wrapped) != notes.ENOTFOUND {
		t.Error("wrapped code lost")
	}
}
