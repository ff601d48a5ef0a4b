package postgres

import (
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

func TestGate(t *testing.T) {
	connectErr := fmt.Errorf("get note: %w", &pgconn.ConnectError{})
	answered := &pgconn.PgError{Code: "23505"}
	lost := &pgconn.PgError{Code: "57P01"}
	type step struct {
		at    time.Duration // since the start
		enter bool          // want
		leave error         // what the statement found, when it entered
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"up: every statement runs", []step{{0, true, nil}, {0, true, answered}, {0, true, pgx.ErrNoRows}}},
		{"a failed connect holds the next statements", []step{
			{0, true, connectErr}, {10 * time.Millisecond, false, nil}, {probeEvery - time.Millisecond, false, nil},
		}},
		{"one probe after probeEvery; its success opens", []step{
			{0, true, connectErr}, {probeEvery, true, nil}, {probeEvery, true, nil},
		}},
		{"a probe in flight holds the others until it expires", []step{
			{0, true, connectErr},
			{probeEvery, true, errNoLeave}, // the probe hangs
			{probeEvery + probeExpiry/2, false, nil},
			{probeEvery + probeExpiry, true, answered}, // a second probe; the server answered
			{probeEvery + probeExpiry, true, nil},
		}},
		{"a failed probe holds for another probeEvery", []step{
			{0, true, connectErr}, {probeEvery, true, connectErr}, {probeEvery + probeEvery/2, false, nil}, {2 * probeEvery, true, nil},
		}},
		{"a lost connection or a cancelled request says nothing", []step{
			{0, true, connectErr}, {probeEvery, true, lost}, {probeEvery, false, nil},
			{probeEvery + probeExpiry, true, io.EOF}, {probeEvery + probeExpiry, false, nil},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			var now time.Time
			g := &gate{now: func() time.Time { return now }}
			for i, st := range tt.steps {
				now = start.Add(st.at)
				tk, got := g.enter()
				if got != st.enter {
					t.Fatalf("step %d at %v: enter = %v, want %v", i, st.at, got, st.enter)
				}
				if st.enter && !errors.Is(st.leave, errNoLeave) {
					g.leave(tk, st.leave)
				}
			}
		})
	}
}

// TestGateStaleConnectFailure: a connect that fails after a later one got through (a probe whose
// lookup hung while the database came back) neither closes the gate nor fails its statement.
func TestGateStaleConnectFailure(t *testing.T) {
	connectErr := fmt.Errorf("get note: %w", &pgconn.ConnectError{})
	start := time.Now()
	now := start
	g := &gate{now: func() time.Time { return now }}
	enter := func(want bool) ticket {
		t.Helper()
		tk, ok := g.enter()
		if ok != want {
			t.Fatalf("at %v: enter = %v, want %v", now.Sub(start), ok, want)
		}
		return tk
	}

	early := enter(true) // entered while up; its connect will hang
	if g.leave(enter(true), connectErr) {
		t.Fatal("a fresh connect failure reported stale")
	}
	now = now.Add(probeEvery)
	hung := enter(true) // the probe; its lookup hangs
	now = now.Add(probeExpiry)
	if g.leave(enter(true), nil) { // the next probe gets through
		t.Fatal("an answer reported stale")
	}
	for name, tk := range map[string]ticket{"the hung probe": hung, "the statement entered while up": early} {
		if !g.leave(tk, connectErr) {
			t.Errorf("%s: a connect failure after the gate opened again is not reported stale", name)
		}
		enter(true) // still open
	}

	// A connect failure with no answer since it entered still closes the gate.
	if g.leave(enter(true), connectErr) {
		t.Fatal("a fresh connect failure reported stale")
	}
	enter(false)
}

// errNoLeave marks a statement that is still running at the end of the steps.
var errNoLeave = errors.New("still running")
