package postgres

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// gate answers for a database that cannot be connected to: after a failed connect, statements
// fail at once instead of each trying to connect, and one probe at a time finds out when the
// database is back.
//
// Without it, every request of an outage waits for its own connect attempt, queued behind the
// pool's few slots. A refused connect costs nothing, but a name or an address that does not
// answer (a Swarm service with no task, whose name Docker's DNS forwards to resolvers that may
// not answer) holds each attempt for the whole connect timeout: the fault suite measured
// requests queued for more than nginx's 10 s read timeout, and clients that gave up without an
// answer instead of getting a 503.
type gate struct {
	mu   sync.Mutex
	now  func() time.Time
	down bool
	// next is when the next probe may start: probeEvery after the last failed connect, or
	// probeExpiry after the probe in flight started (a connect that hangs must not hold
	// recovery up for its whole timeout).
	next time.Time
	// opened counts the times an answer opened the gate. A connect that fails after a later
	// attempt got through is stale (a probe whose lookup hung while the database came back:
	// Swarm's DNS lists the new task only then) and must not close the gate again: the fault
	// suite saw 503s for as long as the lookup timeout after the database was back.
	opened uint64
}

const (
	probeEvery  = 200 * time.Millisecond
	probeExpiry = time.Second
)

func newGate() *gate { return &gate{now: time.Now} }

// errDatabaseDown is what a statement gets while the gate holds: the database did not accept
// the last connection.
var errDatabaseDown = errors.New("the database did not accept the last connection; not trying again yet")

// enter reports whether a statement may run now (always while the database is up; while it is
// down, only as the probe) and gives it the ticket it carries to the connect hook and to leave.
func (g *gate) enter() (t ticket, ok bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	t = ticket{gate: g, opened: g.opened}
	if !g.down {
		return t, true
	}
	now := g.now()
	if now.Before(g.next) {
		return t, false
	}
	g.next = now.Add(probeExpiry)
	t.probe = true
	return t, true
}

func (g *gate) isDown() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.down
}

// ticket is what a statement that entered carries in its context to the pool's connect hook.
type ticket struct {
	gate   *gate
	probe  bool
	opened uint64 // the gate's count when the statement entered
}

type ticketKey struct{}

// holdWhileDown is the pool's BeforeConnect hook. A statement that entered while the database
// was up and still waits for a connection when a connect failed (queued behind the pool's few
// slots, each held by a connect to an address that does not answer) gets no connect of its own:
// only the probe connects while the gate holds.
func holdWhileDown(ctx context.Context, _ *pgx.ConnConfig) error {
	if t, ok := ctx.Value(ticketKey{}).(ticket); ok && !t.probe && t.gate.isDown() {
		return errDatabaseDown
	}
	return nil
}

// leave records what the statement with ticket t found: a failed connect holds the gate; an
// answer from the server, an error included, opens it. Anything else (a lost connection, a
// cancelled request) says nothing about whether the next connect would succeed. It reports a
// stale failure: the connect failed, but the gate was opened since the statement entered, so
// the database is back and the statement, which reached no server, may run again.
func (g *gate) leave(t ticket, err error) (stale bool) {
	if errors.Is(err, errDatabaseDown) {
		return false // held back, it found nothing
	}
	var connectErr *pgconn.ConnectError
	var pgErr *pgconn.PgError
	connectFailed := errors.As(err, &connectErr)
	answered := err == nil || errors.Is(err, pgx.ErrNoRows) || (errors.As(err, &pgErr) && !connLost(err))
	if !connectFailed && !answered {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if connectFailed && t.opened != g.opened {
		return !g.down
	}
	if answered && g.down {
		g.opened++
	}
	g.down = connectFailed
	if connectFailed {
		g.next = g.now().Add(probeEvery)
	}
	return false
}
