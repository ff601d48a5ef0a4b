package logbuf_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/notes-stack/notes/internal/testing/testutil"
	"github.com/notes-stack/notes/service/internal/logbuf"
)

func TestCloseFlushes(t *testing.T) {
	var out testutil.SyncBuffer
	w := logbuf.New(&out, time.Hour)
	w.Write([]byte("one\n"))
	if got := out.String(); got != "" {
		t.Fatalf("written through before a flush: %q", got)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != "one\n" {
		t.Errorf("after Close: %q", got)
	}
}

func TestFlushesOnInterval(t *testing.T) {
	var out testutil.SyncBuffer
	w := logbuf.New(&out, 10*time.Millisecond)
	t.Cleanup(func() { w.Close() })
	w.Write([]byte("tick\n"))
	deadline := time.Now().Add(10 * time.Second)
	for out.String() != "tick\n" {
		if time.Now().After(deadline) {
			t.Fatalf("not flushed by the ticker: %q", out.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Lines written concurrently (as slog handlers do, one Write per record)
// arrive whole, none lost, also when they overflow the buffer.
func TestConcurrentLinesStayWhole(t *testing.T) {
	var out testutil.SyncBuffer
	w := logbuf.New(&out, time.Millisecond)
	line := strings.Repeat("x", 1000) + "\n"
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 200 {
				w.Write([]byte(line))
			}
		})
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 1600 {
		t.Fatalf("%d lines, want 1600", len(lines))
	}
	for i, l := range lines {
		if l+"\n" != line {
			t.Fatalf("line %d split or mixed: %d bytes", i, len(l))
		}
	}
}
