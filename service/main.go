// Command notes is the notes HTTP service: one binary with the subcommands
// serve (default), migrate, seed and healthcheck. See docs/service.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/notes-stack/notes/service/internal/config"
	"github.com/notes-stack/notes/service/internal/postgres"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args, os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "notes:", err)
		stop()
		os.Exit(exitCode(err))
	}
}

const usage = `Usage: notes [command] [flags]

Commands:
  serve                      run the HTTP service (default)
  migrate up|down|status     apply, roll back one, or list database migrations
  seed --count N             insert N generated notes (COPY)
  healthcheck [--url URL]    GET the local /healthz; exit 0 when 200, else 1

Configuration comes from environment variables; see docs/service.md.
Run "notes COMMAND --help" for a command's flags.
`

// run is the whole program; main only wires it to the process. ctx is
// cancelled on SIGINT/SIGTERM.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cmd, rest := "serve", []string{}
	if len(args) > 1 {
		cmd, rest = args[1], args[2:]
	}
	switch cmd {
	case "serve":
		return runServe(ctx, rest, getenv, stdout, stderr)
	case "migrate":
		return runMigrate(ctx, rest, getenv, stdout, stderr)
	case "seed":
		return runSeed(ctx, rest, getenv, stdout, stderr)
	case "healthcheck":
		return runHealthcheck(ctx, rest, getenv, stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		if len(cmd) > 0 && cmd[0] == '-' {
			// Flags without a command belong to serve.
			return runServe(ctx, args[1:], getenv, stdout, stderr)
		}
		fmt.Fprint(stderr, usage)
		return usageErrorf("unknown command %q", cmd)
	}
}

// exitError carries a process exit status other than 1.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageError marks err as a usage or configuration error: exit status 2.
func usageError(err error) error { return &exitError{code: 2, err: err} }

func usageErrorf(format string, a ...any) error { return usageError(fmt.Errorf(format, a...)) }

// exitCode is 2 for usage and configuration errors, else 1.
func exitCode(err error) int {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return 1
}

// parseFlags parses a subcommand's flags. --help prints the usage and
// returns errHelp (helpOK turns it into success); bad flags exit 2.
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer, usage string) error {
	fs.SetOutput(stderr)
	fs.Usage = func() {
		io.WriteString(stderr, usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelp
		}
		return usageError(err)
	}
	return nil
}

var errHelp = errors.New("help requested")

// helpOK maps errHelp to success.
func helpOK(err error) error {
	if errors.Is(err, errHelp) {
		return nil
	}
	return err
}

// loadConfig loads the configuration; errors exit with status 2.
func loadConfig(getenv func(string) string) (config.Config, error) {
	cfg, err := config.Load(getenv)
	if err != nil {
		return cfg, usageError(err)
	}
	return cfg, nil
}

// newPool opens the (lazily connecting) pool. config.Load has parsed the
// connection string already; pgxpool also parses the pool_* parameters in
// it, so a bad one is a configuration error here.
func newPool(ctx context.Context, cfg config.Config, o postgres.PoolOptions) (*pgxpool.Pool, error) {
	pool, err := postgres.NewPool(ctx, cfg.DatabaseURL, o)
	if err != nil {
		return nil, usageError(&config.Error{Var: cfg.DatabaseURLVar, Msg: "invalid connection string " + config.Redact(cfg.DatabaseURL)})
	}
	return pool, nil
}

func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}
