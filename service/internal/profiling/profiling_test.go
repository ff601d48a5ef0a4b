package profiling_test

import (
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/notes-stack/notes/internal/testing/testutil"
	"github.com/notes-stack/notes/service/internal/profiling"
)

// Only builds with -tags pprof answer on the address; the others must not
// open it (go test -tags pprof ./service/internal/profiling covers the
// other half).
func TestStart(t *testing.T) {
	port, err := testutil.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	if err := profiling.Start(t.Context(), addr, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	url := "http://" + addr + "/debug/pprof/"
	if profiling.Enabled {
		testutil.WaitStatus(t, url, 200, 10*time.Second)
		return
	}
	if got := testutil.Status(url); got != 0 {
		t.Errorf("GET %s = %d in a build without -tags pprof", url, got)
	}
}
