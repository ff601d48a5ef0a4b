//go:build !pprof

package profiling

import (
	"context"
	"log/slog"
)

// Enabled reports whether this build serves profiles.
const Enabled = false

// Start does nothing in builds without -tags pprof.
func Start(ctx context.Context, addr string, log *slog.Logger) error { return nil }
