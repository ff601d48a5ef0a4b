package main

import (
	"bufio"
	"io"
	"sync"
	"time"
)

// bufferedLog batches log lines into fewer write syscalls: one JSON access
// line per request was one write(2) per request, about 8% of the CPU of
// GET /healthz under load. Lines are flushed every interval, when the
// buffer fills, and on Close, so at most interval's worth is lost if the
// process is killed with SIGKILL. slog handlers write each record with one
// Write call, so lines are never split.
type bufferedLog struct {
	mu   sync.Mutex
	w    *bufio.Writer
	stop chan struct{}
	done chan struct{}
}

func newBufferedLog(w io.Writer, interval time.Duration) *bufferedLog {
	b := &bufferedLog{w: bufio.NewWriterSize(w, 64<<10), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(b.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				b.Flush()
			case <-b.stop:
				return
			}
		}
	}()
	return b
}

func (b *bufferedLog) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.w.Write(p)
}

// Flush writes out what is buffered.
func (b *bufferedLog) Flush() {
	b.mu.Lock()
	defer b.mu.Unlock()
	_ = b.w.Flush()
}

// Close stops the flusher and flushes.
func (b *bufferedLog) Close() {
	close(b.stop)
	<-b.done
	b.Flush()
}
