package postgres_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/notes-stack/notes/internal/testing/pgtest"
	"github.com/notes-stack/notes/internal/testing/testutil"
	"github.com/notes-stack/notes/service/internal/notes"
	"github.com/notes-stack/notes/service/internal/postgres"
)

// TestOutageAtSilentAddressFailsFast puts the database behind an address that accepts TCP and
// never answers (like a name or an address that does not answer, every connect waits for its
// whole timeout), under 32 concurrent readers. Once the first
// connects failed, the readers must get the unavailable error at once rather than each waiting
// for a connect of its own: only a probe at a time connects. Then the address leads to the real Postgres again, and the readers get
// their notes.
func TestOutageAtSilentAddressFailsFast(t *testing.T) {
	t.Parallel()
	dsn := pgtest.NewMigratedDatabase(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	front := startFront(t, u.Host)
	u.Host = front.addr
	pool, err := postgres.NewPool(context.Background(), u.String(), postgres.PoolOptions{MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	s := postgres.New(pool)
	ctx := context.Background()
	if _, err := s.Create(ctx, "before", "the outage"); err != nil {
		t.Fatal(err)
	}
	pool.Reset() // the outage begins: no connection left, new ones meet silence
	front.silent.Store(true)
	connectsBefore := front.accepted.Load()

	const readers = 32
	var calls, unavailable, other atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				_, err := s.List(ctx, nil, 10)
				calls.Add(1)
				var ne *notes.Error
				switch {
				case errors.As(err, &ne) && ne.Code == notes.EUNAVAILABLE:
					unavailable.Add(1)
					time.Sleep(10 * time.Millisecond) // a client's pause, as the 503's Retry-After asks
				default:
					other.Add(1)
					t.Errorf("during the outage: List = %v, want the unavailable error", err)
				}
			}
		}()
	}
	// The first wave of readers meets the first connects, each waiting the connect timeout
	// (3 s); after that, the readers must fail at once.
	time.Sleep(7 * time.Second)
	close(stop)
	wg.Wait()
	connects := front.accepted.Load() - connectsBefore
	t.Logf("outage of 7 s, %d readers: %d calls, %d unavailable, %d connects to the silent address", readers, calls.Load(), unavailable.Load(), connects)
	// Without the gate each call waits for a connect of its own, queued behind the pool's 4:
	// about 32 connects and 64 calls in 7 s. With it, the pool's first 4 and then a probe a
	// second or so, and every other call fails at once.
	if connects > 4+8 {
		t.Errorf("%d connects to the silent address in 7 s: the readers did not wait for one probe", connects)
	}
	if calls.Load() < 10*readers {
		t.Errorf("%d calls in 7 s by %d readers: they waited for connects instead of failing at once", calls.Load(), readers)
	}

	front.silent.Store(false)
	deadline := time.Now().Add(10 * time.Second)
	for {
		page, err := s.List(ctx, nil, 10)
		if err == nil {
			if len(page.Notes) != 1 {
				t.Errorf("after the outage: %d notes, want the 1 stored before", len(page.Notes))
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the database answers again, but List still fails after 10 s: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// front is a TCP front of a Postgres address: it passes connections through, or while silent
// accepts them and never answers.
type front struct {
	addr     string
	silent   atomic.Bool
	accepted atomic.Int64
}

func startFront(t *testing.T, backend string) *front {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &front{addr: ln.Addr().String()}
	testutil.Serve(t, ln, func(c net.Conn) {
		f.accepted.Add(1)
		if f.silent.Load() {
			_, _ = io.Copy(io.Discard, c) // until the client gives up
			return
		}
		b, err := net.Dial("tcp", backend)
		if err != nil {
			return
		}
		defer b.Close()
		testutil.Pipe(c, b)
	})
	return f
}

// TestHangingLookupIsBounded: a database host whose name lookup never answers (Docker's DNS
// forwarding an unknown name to resolvers that do not answer) costs a statement the connect
// timeout, not the resolver's patience: the statement gets the unavailable error.
func TestHangingLookupIsBounded(t *testing.T) {
	t.Parallel()
	dsn, _ := byName(t, "1")
	hang := func(ctx context.Context, host string) ([]string, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	pool, err := postgres.NewPool(context.Background(), dsn, postgres.PoolOptions{MaxConns: 2, Lookup: hang})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	done := make(chan error, 1)
	go func() { done <- postgres.New(pool).Ping(context.Background()) }()
	select {
	case err := <-done:
		var ne *notes.Error
		if !errors.As(err, &ne) || ne.Code != notes.EUNAVAILABLE {
			t.Errorf("Ping with a hanging lookup = %v, want the unavailable error", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Ping with a hanging lookup still waits after 20 s (connect_timeout is 1 s)")
	}
}

// TestProbeHungWhileDatabaseCameBack: on Swarm the database's name resolves again only once the
// new task is healthy, so a probe whose lookup hung through that moment fails afterwards, when
// another probe has already found the database back. That late failure must neither fail its
// statement (nothing reached a server: it runs again) nor close the gate on the statements
// after it.
func TestProbeHungWhileDatabaseCameBack(t *testing.T) {
	t.Parallel()
	dsn, host := byName(t, "30") // the hung lookup ends when the test says, not by a timeout

	var (
		mu      sync.Mutex
		resolve = false               // the name resolves
		hold    = make(chan struct{}) // a lookup while it does not waits here, then fails
		held    = make(chan struct{}, 8)
	)
	lookup := func(ctx context.Context, name string) ([]string, error) {
		mu.Lock()
		ok := resolve
		mu.Unlock()
		if ok {
			return []string{host}, nil
		}
		held <- struct{}{}
		select {
		case <-hold:
		case <-ctx.Done():
		}
		return nil, errors.New("lookup db.notes.test: no answer")
	}
	pool, err := postgres.NewPool(context.Background(), dsn, postgres.PoolOptions{MaxConns: 4, Lookup: lookup})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	s := postgres.New(pool)
	ctx := context.Background()
	ping := func() <-chan error {
		done := make(chan error, 1)
		go func() { done <- s.Ping(ctx) }()
		return done
	}

	// The database goes away: the first statement's lookup fails, and the gate closes.
	first := ping()
	<-held
	hold <- struct{}{}
	if err := <-first; err == nil {
		t.Fatal("Ping with a failing lookup succeeded")
	}
	// The probe: its lookup hangs.
	time.Sleep(300 * time.Millisecond) // > probeEvery
	hung := ping()
	<-held
	// The name resolves again; the next probe (after the hung one expired) gets through.
	mu.Lock()
	resolve = true
	mu.Unlock()
	time.Sleep(1200 * time.Millisecond) // > probeExpiry
	if err := <-ping(); err != nil {
		t.Fatalf("a probe once the name resolves: %v", err)
	}
	// Now the hung lookup fails.
	close(hold)
	if err := <-hung; err != nil {
		t.Errorf("the statement whose lookup hung while the database came back: %v, want it run again", err)
	}
	for i := range 20 {
		if err := <-ping(); err != nil {
			t.Fatalf("statement %d after the database came back: %v", i, err)
		}
	}
}

// byName is a new migrated database's URL with the host replaced by the name db.notes.test, which
// only a test's own lookup (PoolOptions.Lookup) resolves, and connect_timeout set to seconds. It
// also returns the host the name stands for.
func byName(t *testing.T, seconds string) (dsn, host string) {
	t.Helper()
	u, err := url.Parse(pgtest.NewMigratedDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(u.Host)
	u.Host = net.JoinHostPort("db.notes.test", port)
	q := u.Query()
	q.Set("connect_timeout", seconds)
	u.RawQuery = q.Encode()
	return u.String(), host
}
