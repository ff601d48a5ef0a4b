package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/notes-stack/notes/internal/testing/nginxtest"
	"github.com/notes-stack/notes/internal/testing/pgtest"
	"github.com/notes-stack/notes/internal/testing/testutil"
	"github.com/notes-stack/notes/nginx"
)

// outcome is one request of the fault load.
type outcome struct {
	at          time.Time // when the answer (or the error) came
	post        bool
	status      int // 0: transport error
	retryAfter  string
	contentType string
	id          int64 // the note of a 201
	err         error
}

// TestDatabaseOutageThroughNginx kills Postgres (SIGKILL of every process, as a killed
// container) under load through a real nginx in front of two real replicas, in both of the
// upstream forms nginx/ renders, and starts it again. While it is down every answer is the
// service's 503 problem with Retry-After, passed through by nginx; never a 502 (nginx must not
// take the replicas' 503 for their failure and eject them). Once it is back the replicas answer
// again without a restart, every acknowledged note is stored, and the log reports how long the
// first 2xx took after Postgres accepted connections again.
func TestDatabaseOutageThroughNginx(t *testing.T) {
	t.Parallel()
	for _, form := range []string{"static", "dns"} {
		t.Run(form, func(t *testing.T) {
			t.Parallel()
			pg := pgtest.NewDurableServer(t)
			dsn := pg.NewDatabase(t)
			migrated(t, dsn)

			h := nginxtest.New(t)
			cfg := h.Config(nginx.Defaults())
			cfg.WriteRatePerMinute = 0 // every client here is 127.0.0.1
			cfg.AccessLog = "off"
			var addrs []string
			if form == "static" {
				for range 2 {
					port, err := testutil.FreePort()
					if err != nil {
						t.Fatal(err)
					}
					addrs = append(addrs, "127.0.0.1:"+strconv.Itoa(port))
				}
				cfg.Upstreams = addrs
			} else {
				ips := []string{"127.0.0.2", "127.0.0.3"}
				lns := nginxtest.ListenSamePort(t, ips...)
				port := lns[0].Addr().(*net.TCPAddr).Port
				for i, ln := range lns {
					ln.Close() // the replica listens on it next
					addrs = append(addrs, net.JoinHostPort(ips[i], strconv.Itoa(port)))
				}
				dns := nginxtest.NewDNS(t)
				dns.Set("notes-app.test", ips...)
				cfg.UpstreamDNS, cfg.UpstreamPort = "notes-app.test", port
				cfg.Resolver = []string{dns.Addr()}
			}
			for _, a := range addrs {
				s := startService(t, map[string]string{"DATABASE_URL": dsn, "HTTP_ADDR": a, "DB_MAX_CONNS": "4"})
				testutil.WaitStatus(t, s.base+"/readyz", 200, 20*time.Second)
			}
			h.Start(cfg)

			results := make(chan outcome, 1<<16)
			stop := make(chan struct{})
			var wg sync.WaitGroup
			for c := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					client := &http.Client{Timeout: 30 * time.Second}
					for n := 0; ; n++ {
						select {
						case <-stop:
							return
						default:
						}
						results <- faultRequest(client, h.HTTPURL("/api/notes"), (c+n)%2 == 0, fmt.Sprintf("outage-%s-%d-%d", form, c, n))
					}
				}()
			}

			time.Sleep(time.Second)
			down := time.Now()
			if err := pg.Kill(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(2 * time.Second)
			if err := pg.Start(); err != nil {
				t.Fatal(err)
			}
			// Start returns once a connection succeeded: Postgres accepted connections by then.
			back := time.Now()
			var firstOK time.Time
			var seen []outcome
			deadline := time.After(20 * time.Second)
			for firstOK.IsZero() {
				select {
				case o := <-results:
					seen = append(seen, o)
					if o.at.After(back) && o.status/100 == 2 {
						firstOK = o.at
					}
				case <-deadline:
					t.Fatal("no 2xx through nginx within 20s of Postgres accepting connections again")
				}
			}
			time.Sleep(2 * time.Second) // load after the recovery
			close(stop)
			wg.Wait()
			close(results)
			for o := range results {
				seen = append(seen, o)
			}

			counts := map[int]int{}
			var ids []int64
			var lastFail time.Time
			for _, o := range seen {
				counts[o.status]++
				switch {
				case o.status == 0:
					t.Errorf("transport error: %v", o.err)
				case o.status == http.StatusServiceUnavailable:
					if o.retryAfter == "" || o.contentType != "application/problem+json" {
						t.Errorf("503 with Retry-After %q, Content-Type %q", o.retryAfter, o.contentType)
					}
				case o.status/100 != 2:
					t.Errorf("status %d (want 2xx or the service's 503)", o.status)
				}
				if o.status/100 != 2 && o.at.After(lastFail) {
					lastFail = o.at
				}
				if o.status == http.StatusCreated {
					ids = append(ids, o.id)
				}
			}
			if counts[http.StatusServiceUnavailable] == 0 {
				t.Errorf("no 503 while Postgres was down: %v", counts)
			}
			if counts[http.StatusBadGateway] > 0 {
				t.Errorf("%d answers were nginx's 502", counts[http.StatusBadGateway])
			}
			if late := lastFail.Sub(firstOK); !lastFail.IsZero() && late > time.Second {
				t.Errorf("a request failed %v after the first 2xx following the restart", late)
			}
			var stored int
			conn, err := pgx.Connect(context.Background(), dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(context.Background())
			if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM notes WHERE id = ANY($1)", ids).Scan(&stored); err != nil {
				t.Fatal(err)
			}
			if stored != len(ids) {
				t.Errorf("%d notes acknowledged with 201, %d of them stored", len(ids), stored)
			}
			t.Logf("%s form: statuses %v; Postgres down %v; first 2xx %v after it accepted connections again; last failure %v after that first 2xx; %d acknowledged notes all stored",
				form, counts, back.Sub(down).Round(time.Millisecond), firstOK.Sub(back).Round(time.Millisecond),
				max(0, lastFail.Sub(firstOK)).Round(time.Millisecond), len(ids))
		})
	}
}

// faultRequest sends one GET of the list or one keyed POST and records the answer.
func faultRequest(client *http.Client, url string, post bool, key string) outcome {
	var req *http.Request
	if post {
		req, _ = http.NewRequest(http.MethodPost, url, strings.NewReader(`{"title":"outage"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", key)
	} else {
		req, _ = http.NewRequest(http.MethodGet, url+"?limit=5", nil)
	}
	res, err := client.Do(req)
	if err != nil {
		return outcome{at: time.Now(), post: post, err: err}
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	o := outcome{at: time.Now(), post: post, status: res.StatusCode, err: err,
		retryAfter: res.Header.Get("Retry-After"), contentType: res.Header.Get("Content-Type")}
	if err != nil {
		o.status = 0
	}
	if o.status == http.StatusCreated {
		// {"id":N}
		o.id, _ = strconv.ParseInt(strings.Trim(strings.TrimPrefix(strings.TrimSpace(string(body)), `{"id":`), "}"), 10, 64)
	}
	return o
}
