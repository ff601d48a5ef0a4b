package httpapi

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/notes-stack/notes/service/internal/notes"
)

func TestAppendNoteMatchesEncodingJSON(t *testing.T) {
	strs := []string{"", "plain", "quote\" backslash\\ slash/", "ctl \x00\x01\x1f\x7f \n\r\t",
		"<html>&amp;", "é 😀 \u2028 \u2029", "bad \xff utf8 \xc3", "\ufffd"}
	for _, s := range strs {
		n := notes.Note{ID: 42, Title: s, Body: s + s, CreatedAt: time.Date(2024, 2, 3, 4, 5, 6, 789000, time.FixedZone("x", 3600))}
		var got struct {
			ID        int64
			Title     string
			Body      string
			CreatedAt string `json:"created_at"`
		}
		b := appendNote(nil, n)
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("%q: invalid JSON %s: %v", s, b, err)
		}
		want, _ := json.Marshal(s)
		var wantS string
		json.Unmarshal(want, &wantS)
		if got.Title != wantS || got.Body != wantS+wantS || got.ID != 42 || got.CreatedAt != "2024-02-03T03:05:06.000789Z" {
			t.Errorf("%q: got %+v", s, got)
		}
	}
}

func TestAppendCreatedAtMatchesAppendFormat(t *testing.T) {
	times := []time.Time{
		time.Date(2024, 2, 3, 4, 5, 6, 789000, time.FixedZone("x", 3600)),
		time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-44, 3, 15, 12, 0, 0, 0, time.UTC),
		time.Date(1999, 12, 31, 23, 59, 59, 1000, time.FixedZone("y", -7*3600)),
		time.Unix(0, 0),
		time.Now(),
	}
	for i := 0; i < 1000; i++ {
		times = append(times, time.Unix(int64(i)*9_876_543_211-4_000_000_000_000, int64(i)*7_654_321%1e9))
	}
	for _, tm := range times {
		want := string(tm.UTC().AppendFormat(nil, createdAtLayout))
		if got := string(appendCreatedAt(nil, tm)); got != want {
			t.Errorf("appendCreatedAt(%v) = %s, want %s", tm, got, want)
		}
	}
}
