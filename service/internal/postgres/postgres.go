// Package postgres implements notes.Store on a pgx v5 pool with explicit SQL.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/notes-stack/notes/service/internal/notes"
)

// defaultConnectTimeout applies when the connection string sets none, so a
// request fails with 503 quickly while the database is down.
const defaultConnectTimeout = 3 * time.Second

// PoolOptions sizes the pool.
type PoolOptions struct {
	MaxConns int32
	MinConns int32
	// Lookup resolves the database's host name; nil: the connection string's default
	// (net.DefaultResolver).
	Lookup pgconn.LookupFunc
}

// NewPool parses dsn and returns a pool that connects lazily: it does not
// fail when the database is down (readiness reports that instead).
func NewPool(ctx context.Context, dsn string, o PoolOptions) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	if o.MaxConns > 0 {
		cfg.MaxConns = o.MaxConns
	}
	if o.MinConns > 0 {
		cfg.MinConns = o.MinConns
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = defaultConnectTimeout
	}
	// pgconn resolves the host with the caller's context and applies ConnectTimeout only to the
	// connects after it, so a name whose lookup hangs held a request for as long as the
	// resolver tried (Docker's DNS forwards a name it does not know, such as a Swarm service
	// with no task, to the host's resolvers: the swarm fault suite saw requests held past
	// nginx's read timeout). The lookup gets the connect timeout too.
	lookup := cfg.ConnConfig.LookupFunc
	if o.Lookup != nil {
		lookup = o.Lookup
	}
	timeout := cfg.ConnConfig.ConnectTimeout
	cfg.ConnConfig.LookupFunc = func(ctx context.Context, host string) ([]string, error) {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		return lookup(ctx, host)
	}
	cfg.BeforeConnect = holdWhileDown
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		cfg.ConnConfig.RuntimeParams["application_name"] = "notes"
	}
	return pgxpool.NewWithConfig(ctx, cfg)
}

// Store is the Postgres notes.Store.
type Store struct {
	pool *pgxpool.Pool
	gate *gate
}

var _ notes.Store = (*Store)(nil)

// New returns a Store over pool.
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool, gate: newGate()} }

const noteColumns = "id, title, body, created_at"

// scanNote scans noteColumns positionally. pgx.RowToStructByName would do
// the same by reflection, and the profile showed that matching field names
// on every row costs about 5% of the list endpoint's CPU.
func scanNote(row pgx.CollectableRow) (notes.Note, error) {
	var n notes.Note
	err := row.Scan(&n.ID, &n.Title, &n.Body, &n.CreatedAt)
	return n, err
}

// The statements of the hot paths. bench/ runs copies of listQuery and
// insertQuery through pgbench (TestBenchSQLMatches keeps them in step).
const (
	// listQuery is the first page.
	listQuery = "SELECT " + noteColumns + " FROM notes ORDER BY created_at DESC, id DESC LIMIT $1"
	// listAfterQuery continues after a cursor; the row comparison uses the
	// (created_at DESC, id DESC) index.
	listAfterQuery = "SELECT " + noteColumns + " FROM notes WHERE (created_at, id) < ($1, $2) ORDER BY created_at DESC, id DESC LIMIT $3"
	// insertQuery is the one INSERT: with an idempotency key ($3) it
	// inserts unless the key is taken; with NULL it always inserts (NULLs
	// are outside the partial unique index, so they never conflict, and
	// pgbench measured it as fast as a plain INSERT). The conflict target
	// names the index's column and predicate so Postgres infers it; DO
	// NOTHING needs only the INSERT privilege.
	insertQuery = "INSERT INTO notes (title, body, idempotency_key) VALUES ($1, $2, $3) " +
		"ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING RETURNING " + noteColumns
)

// Create inserts a note without an idempotency key and returns it as stored.
// It is not repeated after a lost connection: the note may have been stored
// (a request with an Idempotency-Key can be repeated, CreateIdempotent).
func (s *Store) Create(ctx context.Context, title, body string) (n notes.Note, err error) {
	err = s.run(ctx, func(ctx context.Context) error {
		rows, _ := s.pool.Query(ctx, insertQuery, title, body, nil)
		n, err = pgx.CollectExactlyOneRow(rows, scanNote)
		return err
	})
	if err != nil {
		s.lost(err)
		return notes.Note{}, mapError(err, "create note")
	}
	return n, nil
}

const getByKeyQuery = "SELECT " + noteColumns + " FROM notes WHERE idempotency_key = $1"

// CreateIdempotent inserts a note under key, or returns the note that
// already has key with created false.
//
// The unique index serialises concurrent inserts with one key: the second
// waits for the first to commit and then does nothing. Its own snapshot
// cannot see the winner, which is why the read is a separate statement
// rather than a CTE. If the winner is deleted between the two statements
// the key is free again and the insert is retried.
func (s *Store) CreateIdempotent(ctx context.Context, key, title, body string) (n notes.Note, created bool, err error) {
	err = s.again(ctx, func(ctx context.Context) error {
		n, created, err = s.createIdempotent(ctx, key, title, body)
		return err
	})
	if err != nil {
		return notes.Note{}, false, mapError(err, "create note")
	}
	return n, created, nil
}

func (s *Store) createIdempotent(ctx context.Context, key, title, body string) (notes.Note, bool, error) {
	for range 3 {
		rows, _ := s.pool.Query(ctx, insertQuery, title, body, key)
		n, err := pgx.CollectExactlyOneRow(rows, scanNote)
		if err == nil {
			return n, true, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return notes.Note{}, false, mapError(err, "create note")
		}
		rows, _ = s.pool.Query(ctx, getByKeyQuery, key)
		n, err = pgx.CollectExactlyOneRow(rows, scanNote)
		if err == nil {
			return n, false, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return notes.Note{}, false, mapError(err, "get note by idempotency key")
		}
	}
	return notes.Note{}, false, &notes.Error{Code: notes.EUNAVAILABLE, Message: "database unavailable",
		Err: errors.New("create note: idempotency key kept conflicting with a note that was being deleted")}
}

// Get returns the note with id, or ENOTFOUND.
func (s *Store) Get(ctx context.Context, id int64) (n notes.Note, err error) {
	err = s.again(ctx, func(ctx context.Context) error {
		rows, _ := s.pool.Query(ctx, "SELECT "+noteColumns+" FROM notes WHERE id = $1", id)
		n, err = pgx.CollectExactlyOneRow(rows, scanNote)
		return err
	})
	if err != nil {
		return notes.Note{}, mapError(err, "get note")
	}
	return n, nil
}

// List returns up to limit notes, newest first, strictly after the cursor.
// It reads one extra row to know whether a next page exists.
func (s *Store) List(ctx context.Context, after *notes.Cursor, limit int) (notes.Page, error) {
	var list []notes.Note
	err := s.again(ctx, func(ctx context.Context) error {
		var rows pgx.Rows
		if after == nil {
			rows, _ = s.pool.Query(ctx, listQuery, limit+1)
		} else {
			rows, _ = s.pool.Query(ctx, listAfterQuery, after.CreatedAt, after.ID, limit+1)
		}
		var err error
		list, err = pgx.CollectRows(rows, scanNote)
		return err
	})
	if err != nil {
		return notes.Page{}, mapError(err, "list notes")
	}
	page := notes.Page{Notes: list}
	if len(list) > limit {
		page.Notes = list[:limit]
		last := page.Notes[limit-1]
		page.Next = &notes.Cursor{CreatedAt: last.CreatedAt, ID: last.ID}
	}
	if page.Notes == nil {
		page.Notes = []notes.Note{}
	}
	return page, nil
}

// Update applies p to the note with id and returns the result. Setting
// values twice gives the same note, so it is repeated after a lost
// connection.
func (s *Store) Update(ctx context.Context, id int64, p notes.Patch) (n notes.Note, err error) {
	err = s.again(ctx, func(ctx context.Context) error {
		rows, _ := s.pool.Query(ctx, `UPDATE notes
			SET title = coalesce($2, title), body = coalesce($3, body)
			WHERE id = $1 RETURNING `+noteColumns, id, p.Title, p.Body)
		n, err = pgx.CollectExactlyOneRow(rows, scanNote)
		return err
	})
	if err != nil {
		return notes.Note{}, mapError(err, "update note")
	}
	return n, nil
}

// Delete removes the note with id, or returns ENOTFOUND. It is not
// repeated after a lost connection: a repeat of a delete that was done
// would answer ENOTFOUND.
func (s *Store) Delete(ctx context.Context, id int64) error {
	var tag pgconn.CommandTag
	err := s.run(ctx, func(ctx context.Context) (err error) {
		tag, err = s.pool.Exec(ctx, "DELETE FROM notes WHERE id = $1", id)
		return err
	})
	if err != nil {
		s.lost(err)
		return mapError(err, "delete note")
	}
	if tag.RowsAffected() == 0 {
		return notes.Errorf(notes.ENOTFOUND, "note %d not found", id)
	}
	return nil
}

// Ping runs SELECT 1.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.again(ctx, func(ctx context.Context) error { return s.pool.QueryRow(ctx, "SELECT 1").Scan(&one) }); err != nil {
		return mapError(err, "ping")
	}
	return nil
}

// again runs a statement that gives the same result when repeated (a read,
// or a write that sets values) and runs it once more when its connection
// turned out to be lost: after a restart of Postgres the pool's connections
// are all broken, and the first statement on each finds out only when it
// reads the answer (the server's FATAL, or EOF, waiting in the socket).
// The repeat gets a fresh connection: lost has reset the pool.
func (s *Store) again(ctx context.Context, f func(context.Context) error) error {
	err := s.run(ctx, f)
	if err != nil && s.lost(err) {
		err = s.run(ctx, f)
		if err != nil {
			s.lost(err)
		}
	}
	return err
}

// run runs the statements of f unless the gate holds them back (the database did not accept the
// last connection), and tells the gate what they found. f's context carries the gate to the
// pool's connect hook (holdWhileDown). A connect that failed while another got through (the
// database came back while this one hung) is tried once more: no statement reached a server.
func (s *Store) run(ctx context.Context, f func(context.Context) error) error {
	var err error
	for range 2 {
		t, ok := s.gate.enter()
		if !ok {
			return errDatabaseDown
		}
		err = f(context.WithValue(ctx, ticketKey{}, t))
		if !s.gate.leave(t, err) {
			return err
		}
	}
	return err
}

// lost reports whether err means the session behind the statement's
// connection is gone (the server shut down, crashed or restarted, the
// backend was terminated, or the network dropped the connection). Then the
// other idle connections most likely went with it, so the pool closes them
// all (pgxpool.Pool.Reset) instead of handing out each one to fail one
// more request. A failure to connect is not a loss: there was no session.
func (s *Store) lost(err error) bool {
	if !connLost(err) {
		return false
	}
	s.pool.Reset()
	return true
}

func connLost(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// 08: connection exception; 57P01 admin_shutdown (also a terminated backend and a
		// postmaster that died), 57P02 crash_shutdown.
		return pgErr.Code[:2] == "08" || pgErr.Code == "57P01" || pgErr.Code == "57P02"
	}
	var connectErr *pgconn.ConnectError
	if errors.As(err, &connectErr) {
		return false
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// Seed inserts count generated notes with COPY and returns how many it wrote.
// Creation times go back one second per note from now, so the newest-first
// order is the generation order reversed.
func Seed(ctx context.Context, pool *pgxpool.Pool, count int) (int64, error) {
	now := time.Now()
	i := 0
	src := pgx.CopyFromFunc(func() ([]any, error) {
		if i >= count {
			return nil, nil
		}
		i++
		return []any{
			fmt.Sprintf("Seeded note %d", i),
			fmt.Sprintf("Body of seeded note %d. %s", i, strings.Repeat("lorem ipsum ", i%8)),
			now.Add(-time.Duration(count-i) * time.Second),
		}, nil
	})
	n, err := pool.CopyFrom(ctx, pgx.Identifier{"notes"}, []string{"title", "body", "created_at"}, src)
	if err != nil {
		return n, mapError(err, "seed")
	}
	return n, nil
}

// mapError turns a pgx error into a *notes.Error: no rows is ENOTFOUND,
// data and constraint errors (SQLSTATE classes 22 and 23) are EUNPROCESS,
// insufficient resources (class 53, disk full among them) is EUNAVAILABLE,
// and anything else from the database (connection refused, shutdown,
// timeouts, too many connections, the gate holding statements back) is
// EUNAVAILABLE. A cancelled request context stays context.Canceled, and an
// error mapped already stays as it is.
func mapError(err error, op string) error {
	var mapped *notes.Error
	if errors.As(err, &mapped) {
		return err
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return &notes.Error{Code: notes.ENOTFOUND, Message: "note not found", Err: err}
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code[:2] {
		case "22", "23":
			// Postgres's text names tables, constraints and values: it goes to the log
			// (through Err), the client gets our words.
			return &notes.Error{Code: notes.EUNPROCESS, Message: "the database rejected the note", Err: fmt.Errorf("%s: %w", op, err)}
		case "53":
			// Insufficient resources: disk full (53100, a table or index that cannot grow),
			// out of memory, too many connections. The database is up but cannot take this
			// now; the client may retry. (A WAL segment that cannot be created is a PANIC
			// instead: the server restarts, and the request sees a lost connection.)
			return &notes.Error{Code: notes.EUNAVAILABLE, Message: "the database is out of resources (disk, memory or connections)", Err: fmt.Errorf("%s: %w", op, err)}
		case "42":
			// Syntax error or undefined table: most likely migrations were not run.
			return &notes.Error{Code: notes.EUNAVAILABLE, Message: "database schema is not ready", Err: fmt.Errorf("%s: %w", op, err)}
		}
	}
	if errors.Is(err, context.Canceled) {
		return err
	}
	return &notes.Error{Code: notes.EUNAVAILABLE, Message: "database unavailable", Err: fmt.Errorf("%s: %w", op, err)}
}
