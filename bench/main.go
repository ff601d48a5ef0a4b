// Command bench measures the notes service against the database ceiling.
//
//	go run ./bench            (from the repository root; about 2 minutes)
//
// It starts a private PostgreSQL 15 (internal/testing/pgtest), builds the service,
// runs "migrate up" and "seed --count 10000", starts "serve" and measures:
// time from process start to /readyz 200; wrk req/s, p50, p99 and errors for
// GET /healthz and GET /api/notes (64 connections) and POST /api/notes (32);
// the service's RSS idle and under load (VmRSS and VmHWM from /proc); and
// pgbench with the service's own list query and insert (16 clients) on the
// same database. It prints a table with the service/pgbench ratios.
// Needs /usr/bin/wrk and pgbench (Debian packages wrk, postgresql-15).
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/notes-stack/notes/internal/testing/pgtest"
	"github.com/notes-stack/notes/internal/testing/testutil"
)

var (
	duration   = flag.Duration("duration", 10*time.Second, "duration of each load run")
	seedN      = flag.Int("seed", 10000, "notes to seed")
	maxConns   = flag.Int("db-max-conns", 0, "DB_MAX_CONNS for the service (0: the service's default, 2 × GOMAXPROCS, at least 4)")
	wrkThreads = flag.Int("wrk-threads", 2, "wrk threads (-t)")
	profDir    = flag.String("pprof", "", "build with -tags pprof and save CPU profiles of each load run into this directory")
)

// Copies of the service's private SQL (bench cannot import
// service/internal/postgres); its TestBenchSQLMatches fails when they drift.
const (
	listQuery   = "SELECT id, title, body, created_at FROM notes ORDER BY created_at DESC, id DESC LIMIT 51;\n"
	insertQuery = "INSERT INTO notes (title, body, idempotency_key) VALUES ('bench note', 'written by pgbench', NULL) " +
		"ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING RETURNING id, title, body, created_at;\n"
)

func main() {
	flag.Parse()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type result struct {
	svcCPU, busy  float64 // service CPU in cores; whole machine busy fraction
	pgCPU, wrkCPU float64 // Postgres (all backends) and wrk CPU in cores
	name          string
	conns         int
	rps           float64
	p50, p99      time.Duration
	errors        int64
	requests      int64
	pgbenchTPS    float64
	pgbenchLatAvg time.Duration
	pgbenchPgCPU  float64 // Postgres cores during pgbench
	pgbenchCPU    float64 // pgbench's own cores
	// pgbench rate-limited (-R) to the service's req/s: the same statements
	// at the same rate, to compare Postgres CPU per statement like with like.
	ratedTPS, ratedPgCPU float64
	svcP99               float64 // p99 upper bound from the service's own latency histogram, seconds
}

func run() error {
	for _, bin := range []string{"wrk", "pgbench"} {
		if _, err := exec.LookPath(bin); err != nil {
			return fmt.Errorf("%s not found in PATH (apt-get install wrk postgresql-15)", bin)
		}
	}
	work, err := os.MkdirTemp("", "notes-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	fmt.Println("starting PostgreSQL 15 ...")
	pg, err := pgtest.Start()
	if err != nil {
		return err
	}
	defer pg.Close()
	ctx := context.Background()
	dbName, err := pg.CreateDatabase(ctx)
	if err != nil {
		return err
	}
	dsn := pg.DSN(dbName)

	fmt.Println("building the service ...")
	bin := filepath.Join(work, "notes")
	buildArgs := []string{"build", "-trimpath", "-o", bin}
	if *profDir != "" {
		buildArgs = append(buildArgs, "-tags", "pprof")
	}
	build := exec.Command("go", append(buildArgs, "github.com/notes-stack/notes/service")...)
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("go build: %w", err)
	}
	env := append(os.Environ(), "DATABASE_URL="+dsn, "LOG_LEVEL=warn")
	for _, args := range [][]string{{"migrate", "up"}, {"seed", "--count", strconv.Itoa(*seedN)}} {
		cmd := exec.Command(bin, args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v: %v\n%s", args, err, out)
		}
		if args[0] == "seed" {
			fmt.Print(string(out))
		}
	}
	if _, err := exec.Command("psql", dsn, "-qc", "VACUUM ANALYZE notes").CombinedOutput(); err != nil {
		// psql lives next to postgres; fall back to the pool.
		pool, perr := pgxpool.New(ctx, dsn)
		if perr == nil {
			_, _ = pool.Exec(ctx, "VACUUM ANALYZE notes")
			pool.Close()
		}
	}

	port, err := testutil.FreePort()
	if err != nil {
		return err
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	devnull, _ := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	defer devnull.Close()
	srv := exec.Command(bin, "serve")
	// Default log level (info): one JSON access-log line per request, as in production.
	srv.Env = append(os.Environ(), "DATABASE_URL="+dsn, "HTTP_ADDR=127.0.0.1:"+strconv.Itoa(port), "DRAIN_DELAY=0s")
	if *maxConns > 0 {
		srv.Env = append(srv.Env, "DB_MAX_CONNS="+strconv.Itoa(*maxConns))
	}
	pprofPort, _ := testutil.FreePort()
	if *profDir != "" {
		srv.Env = append(srv.Env, fmt.Sprintf("NOTES_PPROF_ADDR=127.0.0.1:%d", pprofPort))
		if err := os.MkdirAll(*profDir, 0o755); err != nil {
			return err
		}
	}
	srv.Stdout, srv.Stderr = devnull, os.Stderr
	start := time.Now()
	if err := srv.Start(); err != nil {
		return err
	}
	defer func() { _ = srv.Process.Signal(os.Interrupt); _ = srv.Wait() }()
	client := &http.Client{Timeout: time.Second}
	var ready time.Duration
	for {
		res, err := client.Get(base + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				ready = time.Since(start)
				break
			}
		}
		if time.Since(start) > 30*time.Second {
			return fmt.Errorf("service not ready after 30s")
		}
		time.Sleep(time.Millisecond)
	}
	pid := srv.Process.Pid
	servicePID = pid
	postgresPID = pg.PID()
	if *profDir != "" {
		pprofURL = fmt.Sprintf("http://127.0.0.1:%d", pprofPort)
	}
	time.Sleep(time.Second)
	idleRSS := vmKB(pid, "VmRSS")
	servicePoolMax = poolMax(base)

	// Sample RSS while under load.
	var mu sync.Mutex
	var loadRSS int64
	stopSample := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stopSample:
				return
			case <-t.C:
				if v := vmKB(pid, "VmRSS"); v > 0 {
					mu.Lock()
					if v > loadRSS {
						loadRSS = v
					}
					mu.Unlock()
				}
			}
		}
	}()

	postLua := filepath.Join(work, "post.lua")
	if err := os.WriteFile(postLua, []byte(`wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"title":"bench note","body":"written by wrk"}'
`), 0o644); err != nil {
		return err
	}
	listSQL := filepath.Join(work, "list.sql")
	insertSQL := filepath.Join(work, "insert.sql")
	// The statements the service runs for GET /api/notes (the default limit
	// of 50 plus one to see whether a next page exists) and POST /api/notes,
	// as service/internal/postgres writes them.
	if err := os.WriteFile(listSQL, []byte(listQuery), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(insertSQL, []byte(insertQuery), 0o644); err != nil {
		return err
	}

	var results []result
	fmt.Println("GET /healthz, 64 connections ...")
	r, err := wrk("GET /healthz", base+"/healthz", 64, "")
	if err != nil {
		return err
	}
	results = append(results, r)

	fmt.Println("GET /api/notes, 64 connections ...")
	r, err = wrk("GET /api/notes", base+"/api/notes", 64, "")
	if err != nil {
		return err
	}
	fmt.Println("pgbench list query, 16 clients ...")
	if err := pgbenchBoth(pg, dbName, listSQL, &r); err != nil {
		return err
	}
	results = append(results, r)

	fmt.Println("POST /api/notes, 32 connections ...")
	r, err = wrk("POST /api/notes", base+"/api/notes", 32, postLua)
	if err != nil {
		return err
	}
	fmt.Println("pgbench insert, 16 clients ...")
	if err := pgbenchBoth(pg, dbName, insertSQL, &r); err != nil {
		return err
	}
	results = append(results, r)

	close(stopSample)
	<-sampled
	hwm := vmKB(pid, "VmHWM")

	fmt.Println()
	fmt.Printf("notes service benchmark (%d seeded notes, %s per run, DB_MAX_CONNS=%s, wrk -t %d, %d CPUs)\n", *seedN, *duration,
		servicePoolMax, *wrkThreads, numCPU())
	fmt.Printf("ready: %s from process start to /readyz 200\n", ready.Round(100*time.Microsecond))
	fmt.Printf("RSS: idle %.1f MiB, under load max %.1f MiB (VmHWM %.1f MiB)\n\n", float64(idleRSS)/1024, float64(loadRSS)/1024, float64(hwm)/1024)
	fmt.Printf("%-17s %5s %10s %9s %9s %7s %12s %10s %8s %8s %8s %8s %9s\n", "endpoint", "conns", "req/s", "p50", "p99", "errors", "pgbench tps", "pgb lat", "ratio", "svc CPU", "pg CPU", "wrk CPU", "host busy")
	for _, r := range results {
		ratio, tps, lat := "-", "-", "-"
		if r.pgbenchTPS > 0 {
			ratio = fmt.Sprintf("%.0f%%", 100*r.rps/r.pgbenchTPS)
			tps = fmt.Sprintf("%.0f", r.pgbenchTPS)
			lat = r.pgbenchLatAvg.Round(time.Microsecond).String()
		}
		fmt.Printf("%-17s %5d %10.0f %9s %9s %7d %12s %10s %8s %8.2f %8.2f %8.2f %8.0f%%\n", r.name, r.conns, r.rps,
			r.p50.Round(time.Microsecond), r.p99.Round(time.Microsecond), r.errors, tps, lat, ratio,
			r.svcCPU, r.pgCPU, r.wrkCPU, 100*r.busy)
	}
	fmt.Println("\npgbench: 16 clients, -M prepared, the service's own SQL; ratio = service req/s / pgbench tps.")
	fmt.Println("svc/pg/wrk CPU: cores used during the run by the service, all Postgres processes, and wrk; host busy: all CPUs.")
	fmt.Println()
	fmt.Println("CPU per request (µs; the host has", numCPU(), "CPUs, shared with anything else running):")
	fmt.Printf("%-17s %8s %8s %8s %8s %12s %12s %14s %10s\n", "endpoint", "service", "pg", "wrk", "total", "pgbench: pg", "pgb client", "pg @same rate", "svc p99")
	for _, r := range results {
		if r.rps <= 0 {
			continue
		}
		per := func(cores float64) float64 { return 1e6 * cores / r.rps }
		pgb, pgbc, rated, sp := "-", "-", "-", "-"
		if r.pgbenchTPS > 0 {
			pgb = fmt.Sprintf("%.0f", 1e6*r.pgbenchPgCPU/r.pgbenchTPS)
			pgbc = fmt.Sprintf("%.0f", 1e6*r.pgbenchCPU/r.pgbenchTPS)
		}
		if r.ratedTPS > 0 {
			rated = fmt.Sprintf("%.0f", 1e6*r.ratedPgCPU/r.ratedTPS)
		}
		if r.svcP99 > 0 {
			sp = fmt.Sprintf("≤ %s", time.Duration(r.svcP99*float64(time.Second)))
		}
		fmt.Printf("%-17s %8.0f %8.0f %8.0f %8.0f %12s %12s %14s %10s\n", r.name, per(r.svcCPU), per(r.pgCPU), per(r.wrkCPU),
			per(r.svcCPU+r.pgCPU+r.wrkCPU), pgb, pgbc, rated, sp)
	}
	fmt.Println("pg @same rate: Postgres CPU per statement when pgbench runs the same SQL rate-limited (-R) to the service's req/s")
	fmt.Println("with as many clients as the service has connections.")
	fmt.Println("svc p99: upper bound from the service's own histogram (http_request_duration_seconds), i.e. inside the handler chain;")
	fmt.Println("wrk's p99 also includes time in socket queues and waiting for a CPU on a saturated host.")
	return nil
}

// pgbenchBoth runs pgbench unthrottled (the ceiling) and then rate-limited
// to the service's req/s, and records both in r.
func pgbenchBoth(pg *pgtest.Server, db, script string, r *result) error {
	var err error
	r.pgbenchTPS, r.pgbenchLatAvg, r.pgbenchPgCPU, r.pgbenchCPU, err = pgbench(pg, db, script, 16, 0)
	if err != nil || r.rps <= 0 {
		return err
	}
	// Same rate and as many clients as the service has connections.
	clients, _ := strconv.Atoi(servicePoolMax)
	if clients < 1 {
		clients = 16
	}
	fmt.Printf("pgbench at the service's rate (%.0f tps, %d clients) ...\n", r.rps, clients)
	r.ratedTPS, _, r.ratedPgCPU, _, err = pgbench(pg, db, script, clients, r.rps)
	return err
}

func numCPU() int {
	b, _ := os.ReadFile("/proc/cpuinfo")
	return strings.Count(string(b), "processor\t:")
}

// vmKB reads a Vm* field (kB) of /proc/PID/status.
func vmKB(pid int, field string) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), field+":") {
			fs := strings.Fields(sc.Text())
			if len(fs) >= 2 {
				n, _ := strconv.ParseInt(fs[1], 10, 64)
				return n
			}
		}
	}
	return 0
}

var (
	reRPS      = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	reReqs     = regexp.MustCompile(`(\d+) requests in`)
	reP50      = regexp.MustCompile(`\n\s+50%\s+([0-9.]+)(us|ms|s)`)
	reP99      = regexp.MustCompile(`\n\s+99%\s+([0-9.]+)(us|ms|s)`)
	reNon2xx   = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
	reSockErrs = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	reTPS      = regexp.MustCompile(`tps = ([0-9.]+) \(without initial connection time\)`)
	reLatAvg   = regexp.MustCompile(`latency average = ([0-9.]+) ms`)
)

var (
	servicePoolMax string // pgxpool_max_conns of the running service
	pprofURL       string
	servicePID     int
	postgresPID    int
)

// childrenCPU sums procCPU over the live children of pid (Postgres backends).
func childrenCPU(pid int) float64 {
	if pid == 0 {
		return 0
	}
	ents, _ := os.ReadDir("/proc")
	// The postmaster itself plus what its exited children used (cutime, cstime).
	total := procCPU(pid) + procChildrenDone(pid)
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", n))
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndex(s, ") ")
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+2:])
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			total += procCPU(n)
		}
	}
	return total
}

// procCPU returns the user+system CPU seconds of pid.
func procCPU(pid int) float64 { return procStatSeconds(pid, 11, 12) }

// procChildrenDone returns the CPU seconds of pid's reaped children.
func procChildrenDone(pid int) float64 { return procStatSeconds(pid, 13, 14) }

// procStatSeconds sums two clock-tick fields of /proc/PID/stat, counted from the first field
// after the command name, in seconds (0 when the process is gone).
func procStatSeconds(pid, a, b int) float64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name (which may contain spaces) start at ") ".
	s := string(raw)
	i := strings.LastIndex(s, ") ")
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+2:])
	if len(f) <= max(a, b) {
		return 0
	}
	x, _ := strconv.ParseFloat(f[a], 64)
	y, _ := strconv.ParseFloat(f[b], 64)
	return (x + y) / 100 // USER_HZ is 100 on Linux
}

// machineCPU returns busy and total jiffies from /proc/stat.
func machineCPU() (busy, total float64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	for i, v := range f[1:] {
		n, _ := strconv.ParseFloat(v, 64)
		total += n
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return busy, total
}

func wrk(name, url string, conns int, script string) (result, error) {
	if pprofURL != "" {
		secs := int(duration.Seconds()) - 2
		if secs < 1 {
			secs = 1
		}
		file := filepath.Join(*profDir, strings.NewReplacer(" ", "_", "/", "_").Replace(name)+".pprof")
		go func() {
			time.Sleep(time.Second)
			res, err := http.Get(fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", pprofURL, secs))
			if err != nil {
				return
			}
			defer res.Body.Close()
			f, err := os.Create(file)
			if err != nil {
				return
			}
			defer f.Close()
			_, _ = io.Copy(f, res.Body)
		}()
	}
	args := []string{"-t", strconv.Itoa(*wrkThreads), "-c", strconv.Itoa(conns), "-d", duration.String(), "--latency", "--timeout", "5s"}
	if script != "" {
		args = append(args, "-s", script)
	}
	args = append(args, url)
	method, route, _ := strings.Cut(name, " ")
	metricsURL := url[:strings.Index(url[len("http://"):], "/")+len("http://")] + "/metrics"
	h0 := histogram(metricsURL, method, route)
	svc0, pg0 := procCPU(servicePID), childrenCPU(postgresPID)
	busy0, total0 := machineCPU()
	t0 := time.Now()
	cmd := exec.Command("wrk", args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return result{}, fmt.Errorf("wrk %s: %v\n%s", name, err, out)
	}
	elapsed := time.Since(t0).Seconds()
	pg1 := childrenCPU(postgresPID)
	busy1, total1 := machineCPU()
	s := string(out)
	r := result{name: name, conns: conns}
	r.svcP99 = quantile(histogram(metricsURL, method, route), h0, 0.99)
	r.svcCPU = (procCPU(servicePID) - svc0) / elapsed
	r.pgCPU = (pg1 - pg0) / elapsed
	r.wrkCPU = (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds() / elapsed
	if total1 > total0 {
		r.busy = (busy1 - busy0) / (total1 - total0)
	}
	if m := reRPS.FindStringSubmatch(s); m != nil {
		r.rps, _ = strconv.ParseFloat(m[1], 64)
	} else {
		return r, fmt.Errorf("wrk %s: cannot parse output:\n%s", name, s)
	}
	if m := reReqs.FindStringSubmatch(s); m != nil {
		r.requests, _ = strconv.ParseInt(m[1], 10, 64)
	}
	r.p50 = wrkDur(reP50.FindStringSubmatch(s))
	r.p99 = wrkDur(reP99.FindStringSubmatch(s))
	if m := reNon2xx.FindStringSubmatch(s); m != nil {
		n, _ := strconv.ParseInt(m[1], 10, 64)
		r.errors += n
	}
	if m := reSockErrs.FindStringSubmatch(s); m != nil {
		for _, v := range m[1:] {
			n, _ := strconv.ParseInt(v, 10, 64)
			r.errors += n
		}
	}
	return r, nil
}

// poolMax reads the pool size the service runs with from /metrics.
func poolMax(base string) string {
	res, err := http.Get(base + "/metrics")
	if err != nil {
		return "?"
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "pgxpool_max_conns "); ok {
			return v
		}
	}
	return "?"
}

var reBucket = regexp.MustCompile(`^http_request_duration_seconds_bucket\{(.*)\} (\S+)$`)

// histogram returns the service's cumulative latency buckets (le -> count)
// of 2xx responses for method and route, from /metrics.
func histogram(metricsURL, method, route string) map[float64]float64 {
	res, err := http.Get(metricsURL)
	if err != nil {
		return nil
	}
	defer res.Body.Close()
	h := map[float64]float64{}
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		m := reBucket.FindStringSubmatch(sc.Text())
		if m == nil || !strings.Contains(m[1], `method="`+method+`"`) || !strings.Contains(m[1], `route="`+route+`"`) ||
			!strings.Contains(m[1], `status="2`) {
			continue
		}
		_, le, _ := strings.Cut(m[1], `le="`)
		le = strings.TrimSuffix(le, `"`)
		b, err := strconv.ParseFloat(le, 64) // "+Inf" parses as +Inf
		if err != nil {
			continue
		}
		v, _ := strconv.ParseFloat(m[2], 64)
		h[b] += v
	}
	return h
}

// quantile returns the upper bound of the bucket holding quantile q of the
// observations between two scrapes (0 if unknown or beyond the last bound).
func quantile(after, before map[float64]float64, q float64) float64 {
	les := make([]float64, 0, len(after))
	for le := range after {
		les = append(les, le)
	}
	sort.Float64s(les)
	if len(les) == 0 {
		return 0
	}
	total := after[les[len(les)-1]] - before[les[len(les)-1]]
	for _, le := range les {
		if after[le]-before[le] >= q*total && !math.IsInf(le, 1) {
			return le
		}
	}
	return 0
}

func wrkDur(m []string) time.Duration {
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	switch m[2] {
	case "us":
		return time.Duration(v * float64(time.Microsecond))
	case "ms":
		return time.Duration(v * float64(time.Millisecond))
	default:
		return time.Duration(v * float64(time.Second))
	}
}

// pgbench runs script with clients clients; rate > 0 throttles it (-R). It
// returns tps, average latency, and the cores used by Postgres and by
// pgbench itself.
func pgbench(pg *pgtest.Server, db, script string, clients int, rate float64) (tps float64, lat time.Duration, pgCPU, clientCPU float64, err error) {
	args := []string{"-n", "-M", "prepared", "-c", strconv.Itoa(clients), "-j", strconv.Itoa(min(2, clients)),
		"-T", strconv.Itoa(int(duration.Seconds())), "-f", script}
	if rate > 0 {
		args = append(args, "-R", strconv.Itoa(int(rate)))
	}
	pg0, t0 := childrenCPU(postgresPID), time.Now()
	cmd := exec.Command("pgbench", append(args, db)...)
	cmd.Env = append(os.Environ(), "PGHOST=127.0.0.1", "PGPORT="+strconv.Itoa(pg.Port),
		"PGUSER=postgres", "PGPASSWORD="+pg.Password, "PGSSLMODE=disable")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return 0, 0, 0, 0, fmt.Errorf("pgbench: %v\n%s", err, out)
	}
	elapsed := time.Since(t0).Seconds()
	pgCPU = (childrenCPU(postgresPID) - pg0) / elapsed
	clientCPU = (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds() / elapsed
	m := reTPS.FindStringSubmatch(string(out))
	if m == nil {
		return 0, 0, 0, 0, fmt.Errorf("pgbench: cannot parse output:\n%s", out)
	}
	tps, _ = strconv.ParseFloat(m[1], 64)
	if m := reLatAvg.FindStringSubmatch(string(out)); m != nil {
		v, _ := strconv.ParseFloat(m[1], 64)
		lat = time.Duration(v * float64(time.Millisecond))
	}
	return tps, lat, pgCPU, clientCPU, nil
}
