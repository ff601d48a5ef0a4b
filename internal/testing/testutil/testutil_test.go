package testutil_test

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/notes-stack/notes/internal/testing/testutil"
)

func TestSyncBufferConcurrentWrites(t *testing.T) {
	var b testutil.SyncBuffer
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				b.Write([]byte("line\n"))
				_ = b.String()
			}
		})
	}
	wg.Wait()
	if got := strings.Count(b.String(), "line\n"); got != 800 {
		t.Errorf("%d lines, want 800", got)
	}
}

func TestGetenv(t *testing.T) {
	getenv := testutil.Getenv(map[string]string{"A": "1"})
	if getenv("A") != "1" || getenv("B") != "" {
		t.Errorf("getenv: A=%q B=%q", getenv("A"), getenv("B"))
	}
}

func TestFreePortIsListenable(t *testing.T) {
	port, err := testutil.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatalf("port %d is not free: %v", port, err)
	}
	l.Close()
}

func TestStatusAndWaitStatus(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusTeapot)
	}))
	t.Cleanup(srv.Close)
	if got := testutil.Status(srv.URL); got != http.StatusTeapot {
		t.Errorf("Status = %d, want 418", got)
	}
	testutil.WaitStatus(t, srv.URL, http.StatusTeapot, time.Second)

	port, err := testutil.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	if got := testutil.Status("http://127.0.0.1:" + strconv.Itoa(port)); got != 0 {
		t.Errorf("Status of a closed port = %d, want 0", got)
	}
}
