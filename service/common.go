package main

import (
	"errors"
	"flag"
	"io"
	"log/slog"

	"github.com/notes-stack/notes/service/internal/config"
)

// loadConfig loads the configuration; errors exit with status 2.
func loadConfig(getenv func(string) string) (config.Config, error) {
	cfg, err := config.Load(getenv)
	if err != nil {
		return cfg, &exitError{code: 2, err: err}
	}
	return cfg, nil
}

func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// parseFlags parses a subcommand's flags. --help prints the usage and
// returns errHelp (run turns it into success); bad flags exit 2.
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
		return &exitError{code: 2, err: err}
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
