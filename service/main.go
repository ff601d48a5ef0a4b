// Command notes is the notes HTTP service: one binary with the subcommands
// serve (default), migrate, seed and healthcheck. See docs/service.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
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

// exitError carries a process exit status.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageErrorf(format string, a ...any) error {
	return &exitError{code: 2, err: fmt.Errorf(format, a...)}
}

// exitCode is 2 for usage and configuration errors, else 1.
func exitCode(err error) int {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return 1
}
