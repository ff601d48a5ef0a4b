//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"text/tabwriter"
	"time"
)

// TestFaults is `make faults`: faults injected into deployed stacks (2 replicas, nginx in
// front, 16 clients of mixed load that send an Idempotency-Key with every POST), as four stacks
// side by side: engine containers for the runtime faults, engine containers deployed over SSH
// for the deploy faults, a small tls=provided stack for the rejected nginx configuration, and
// engine swarm. It prints one table of every fault: load, failed requests by status, how long
// the fault lasted, the seconds of failure after the repair, acknowledged writes lost. It asserts
// on what a user sees, not on timings: no acknowledged write lost, no 502 for a database outage
// (the replicas are healthy; the database is not) and no app task replaced for it, no failed
// idempotent request when one replica crashes, only 503s for writes while the database volume is
// full, no failed request and no lost dump while the backup volume is full.
func TestFaults(t *testing.T) {
	t.Parallel()
	// One slot per subtest, so the table keeps its order whichever finishes first.
	groups := make([][]faultRow, 4)
	t.Cleanup(func() { t.Log("fault table\n" + faultTable(slices.Concat(groups...))) })
	t.Run("engine containers", func(t *testing.T) {
		t.Parallel()
		// Before the stack: unmounted only after the stack's cleanup removed its containers.
		pgdata, backups := hostTmpfs(t, "256m"), hostTmpfs(t, "96m")
		s, _ := devStack(t, "f")
		s.set("notes:replicas", "2")
		s.set("notes:rateLimit", "6000000") // see TestDeployLocal
		bindVolume(s, "notes:dbVolumeDriverOpts", pgdata)
		bindVolume(s, "notes:backupVolumeDriverOpts", backups)
		timed(t, "containers: up", func() { s.up() })
		rows := runFaults(t, containersFaults(s))
		rows = append(rows, readyzFlood(t, s, 2))
		rows = append(rows, diskFullFaults(t, s, pgdata)...)
		groups[0] = append(rows, backupFullFault(t, s, backups))
		timed(t, "containers: destroy", func() { s.destroy() })
	})
	t.Run("engine containers over ssh: deploy faults", func(t *testing.T) {
		t.Parallel()
		// Deployed over SSH, the way a remote host is, so the faults can drop the connection.
		h := startSSHD(t)
		s, _ := devStack(t, "fd")
		s.set("notes:dockerHost", h.dockerHost())
		s.setList("notes:sshOpts", h.SSHOpts)
		s.set("notes:replicas", "2")
		s.set("notes:rateLimit", "6000000")
		timed(t, "containers over ssh: up", func() { s.up() })
		groups[1] = deployFaults(t, s, h)
		timed(t, "containers over ssh: destroy", func() { s.destroy() })
	})
	t.Run("nginx configuration rejected", func(t *testing.T) {
		t.Parallel()
		groups[2] = []faultRow{nginxConfigRejected(t)}
	})
	t.Run("engine swarm", func(t *testing.T) {
		t.Parallel()
		ensureSwarmManager(t)
		s, _ := devStack(t, "fs")
		useSwarmEngine(s)
		s.set("notes:replicas", "2")
		s.set("notes:rateLimit", "6000000")
		// Swarm's DNS lists the restarted database once healthy: checked every second, the
		// outage's recovery is the service's, not the default 5 s interval's.
		s.set("notes:dbHealthInterval", "1s")
		timed(t, "swarm: up", func() { s.up() })
		groups[3] = runFaults(t, swarmFaults(s))
		timed(t, "swarm: destroy", func() { s.destroy() })
	})
}

// faultTarget is how a fault reaches one engine's stack. Each function takes the (sub)test it
// runs in, so a failure stops that subtest.
type faultTarget struct {
	engine string
	s      *stack
	client *http.Client // of the load; nil: plain HTTP
	// database is the running Postgres container (on engine swarm: its task's), "" while there
	// is none.
	database func(t *testing.T) string
	// stopDatabase takes Postgres down (SIGKILL); startDatabase brings it back after outage.
	stopDatabase, startDatabase func(t *testing.T)
	outage                      time.Duration
	// replica is a running app container; replicasHealthy says every replica is healthy again.
	replica         func(t *testing.T) string
	replicasHealthy func(t *testing.T) bool
	// appInstances names every running app process (a restarted or replaced one changes it).
	appInstances func(t *testing.T) map[string]string
	// healthyAt, where the engine's DNS waits for health, is when a database container first
	// turned healthy after since (zero: not found).
	healthyAt func(t *testing.T, since time.Time) time.Time
}

func containersFaults(s *stack) faultTarget {
	db := s.output("databaseContainer")
	replicas := s.stringsOutput("replicaNames") // a crashed replica restarts under its name
	return faultTarget{
		engine:        "containers",
		s:             s,
		database:      func(*testing.T) string { return db },
		stopDatabase:  func(t *testing.T) { docker(t, "kill", db) }, // SIGKILL; a killed container stays down
		startDatabase: func(t *testing.T) { docker(t, "start", db) },
		outage:        5 * time.Second,
		replica:       func(*testing.T) string { return replicas[0] },
		appInstances:  func(t *testing.T) map[string]string { return containerStarts(t, replicas) },
		replicasHealthy: func(t *testing.T) bool {
			for _, r := range replicas {
				if state(t, r) != "running healthy" {
					return false
				}
			}
			return true
		},
	}
}

func swarmFaults(s *stack) faultTarget {
	dbService := s.output("databaseService")
	running := func() string {
		out, _ := exec.Command("docker", "ps", "-q", "--filter", "label=com.docker.swarm.service.name="+dbService).Output()
		ids := strings.Fields(string(out))
		if len(ids) != 1 {
			return ""
		}
		return ids[0]
	}
	return faultTarget{
		engine:   "swarm",
		s:        s,
		database: func(*testing.T) string { return running() },
		// SIGKILL to the task's container, and no task of the service until startDatabase:
		// Swarm would start a new one after its restart delay (5 s), and the outage is to last
		// longer than the app tasks' health checks take to fail three times (3 x 3 s), so that
		// it shows that Swarm never replaces an app task for a database outage (/startedz).
		stopDatabase: func(t *testing.T) {
			docker(t, "kill", serviceTask(t, dbService))
			docker(t, "service", "scale", "--detach", dbService+"=0")
		},
		startDatabase: func(t *testing.T) { docker(t, "service", "scale", "--detach", dbService+"=1") },
		outage:        12 * time.Second,
		replica: func(t *testing.T) string {
			for name := range appTasks(t, s) {
				return name
			}
			t.Fatal("no app task runs")
			return ""
		},
		replicasHealthy: func(t *testing.T) bool {
			tasks := appTasks(t, s)
			healthy := 0
			for _, st := range tasks {
				if strings.HasSuffix(st, " healthy") {
					healthy++
				}
			}
			return healthy == 2 && len(tasks) == 2
		},
		appInstances: func(t *testing.T) map[string]string { return appTasks(t, s) },
		healthyAt: func(t *testing.T, since time.Time) time.Time {
			out, err := exec.Command("docker", "events", "--since", strconv.FormatInt(since.Unix(), 10),
				"--until", strconv.FormatInt(time.Now().Unix(), 10), "--filter", "type=container",
				"--filter", "label=com.docker.swarm.service.name="+dbService,
				"--format", "{{.TimeNano}} {{.Action}}").Output()
			if err != nil {
				t.Logf("docker events: %v", err)
				return time.Time{}
			}
			for _, line := range strings.Split(string(out), "\n") {
				ns, action, _ := strings.Cut(line, " ")
				if action == "health_status: healthy" {
					n, _ := strconv.ParseInt(ns, 10, 64)
					return time.Unix(0, n)
				}
			}
			return time.Time{}
		},
	}
}

// databaseReady says Postgres runs and accepts connections.
func (ft faultTarget) databaseReady(t *testing.T) bool {
	db := ft.database(t)
	return db != "" && exec.Command("docker", "exec", db, "pg_isready", "-q", "-U", "notes", "-d", "notes").Run() == nil
}

// state is a container's "status health".
func state(t *testing.T, container string) string {
	t.Helper()
	out, err := exec.Command("docker", "inspect", "-f",
		"{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}", container).Output()
	if err != nil {
		return "gone"
	}
	return strings.TrimSpace(string(out))
}

// faultRow is one line of the fault table.
type faultRow struct {
	engine, fault string
	clients       int // of the mixed load (3 list GETs to 1 POST)
	requests      int
	failed        map[string]int // "GET 503", "POST 0" (no HTTP answer) -> count
	lasted        time.Duration  // from the injection to the repair
	afterRepair   time.Duration  // from the repair to the last failed request (0: none after)
	lost          int            // acknowledged notes that do not read back as sent
}

func runFaults(t *testing.T, ft faultTarget) []faultRow {
	var rows []faultRow
	t.Run("database outage", func(t *testing.T) {
		before := ft.appInstances(t)
		var injected, repaired time.Time
		row := faultUnderLoad(t, ft, 16, fmt.Sprintf("Postgres killed for %v", ft.outage), func() time.Time {
			injected = time.Now()
			ft.stopDatabase(t)
			time.Sleep(ft.outage)
			ft.startDatabase(t)
			repaired = waitFor(t, 2*time.Minute, "Postgres to accept connections", func() bool { return ft.databaseReady(t) })
			return repaired
		})
		rows = append(rows, row)
		if ft.healthyAt != nil {
			// What the replicas wait for after the repair: the new task in Swarm's DNS.
			if at := ft.healthyAt(t, injected); !at.IsZero() {
				t.Logf("%s: the new Postgres task healthy (listed in DNS) %.1f s after the repair", ft.engine, at.Sub(repaired).Seconds())
			}
		}
		if after := ft.appInstances(t); !maps.Equal(after, before) {
			t.Errorf("app processes before the database outage %v, after %v: an outage of the database must not restart or replace them", before, after)
		}
		for kind, n := range row.failed {
			if strings.HasSuffix(kind, " 502") || strings.HasSuffix(kind, " 504") {
				t.Errorf("%d requests got %s during the database outage: nginx must pass the service's 503 on, not eject healthy replicas", n, kind)
			}
			if strings.HasSuffix(kind, " 0") {
				t.Errorf("%d requests got no answer (%s) during the database outage: the service must answer 503 at once, not hold them until the client gives up", n, kind)
			}
		}
	})
	t.Run("replica crash", func(t *testing.T) {
		row := faultUnderLoad(t, ft, 16, "one replica killed (SIGKILL)", func() time.Time {
			replica := ft.replica(t)
			pid := strings.TrimSpace(docker(t, "inspect", "-f", "{{.State.Pid}}", replica))
			if out, err := exec.Command("kill", "-KILL", pid).CombinedOutput(); err != nil {
				t.Fatalf("kill -KILL %s (%s): %v: %s", pid, replica, err, out)
			}
			time.Sleep(time.Second) // until the engine saw the exit
			return waitFor(t, 2*time.Minute, "the replicas to be healthy again", func() bool { return ft.replicasHealthy(t) })
		})
		rows = append(rows, row)
		for kind, n := range row.failed {
			if strings.HasPrefix(kind, http.MethodGet+" ") {
				t.Errorf("%d GETs failed (%s) when one replica crashed: nginx retries idempotent requests on the other", n, kind)
			}
		}
	})
	return rows
}

// faultUnderLoad runs the load of clients, lets it settle for 5 s, injects the fault (inject returns
// when the stack is repaired), keeps the load for 15 s more and checks every acknowledged note.
func faultUnderLoad(t *testing.T, ft faultTarget, clients int, fault string, inject func() (repaired time.Time)) faultRow {
	t.Helper()
	api := ft.s.output("apiUrl")
	l := newLoad(api, clients)
	if ft.client != nil {
		l.client = ft.client
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { l.run(ctx, clients); close(done) }()
	time.Sleep(5 * time.Second)
	injected := time.Now()
	repaired := inject()
	time.Sleep(15 * time.Second)
	cancel()
	<-done

	row := faultRow{engine: ft.engine, fault: fault, clients: clients, requests: len(l.latencies), failed: map[string]int{},
		lasted: repaired.Sub(injected)}
	for _, f := range l.failed {
		row.failed[fmt.Sprintf("%s %d", f.method, f.status)]++
		if d := f.at.Sub(repaired); d > row.afterRepair {
			row.afterRepair = d
		}
	}
	row.lost = lostAcked(t, l)
	l.report(t, fmt.Sprintf("%s: %s", ft.engine, fault))
	t.Logf("%s: failed by kind %v, fault lasted %v, failures until %v after the repair",
		fault, row.failed, row.lasted.Round(100*time.Millisecond), row.afterRepair.Round(100*time.Millisecond))
	for i, f := range l.failures {
		if i == 10 {
			break
		}
		t.Logf("failed request: %s", f)
	}
	if row.lost > 0 {
		t.Errorf("%d acknowledged notes lost or changed", row.lost)
	}
	if len(l.acked) == 0 {
		t.Error("no POST was acknowledged under load")
	}
	return row
}

// lostAcked reads every acknowledged note back and counts those missing or different. It reads
// the list newest first, 200 a page by its keyset cursor, down to the oldest acknowledged note
// (seconds for thousands of notes), then reads each note that was not found there as sent on
// its own. A read that gets no answer or a 5xx says nothing about the note: it is repeated for up
// to a minute (the stack may still be recovering from the fault), and a note still unread then
// counts as lost.
func lostAcked(t *testing.T, l *load) int {
	t.Helper()
	if len(l.acked) == 0 {
		return 0
	}
	listed, err := listDownTo(l.client, l.notesURL, slices.Min(slices.Collect(maps.Keys(l.acked))))
	if err != nil {
		t.Logf("reading the list back: %v; reading note by note", err)
	}
	lost := 0
	for id, want := range l.acked {
		if got, ok := listed[id]; ok && got == want {
			continue
		}
		deadline := time.Now().Add(time.Minute)
		for {
			status, got, err := readNote(l.client, fmt.Sprintf("%s/%d", l.notesURL, id))
			if (err != nil || status >= 500) && time.Now().Before(deadline) {
				time.Sleep(500 * time.Millisecond)
				continue
			}
			if status != http.StatusOK || err != nil || got != want {
				lost++
				t.Logf("note %d: status %d (%v), reads back as %+v, acknowledged %+v", id, status, err, got, want)
			}
			break
		}
	}
	return lost
}

// listDownTo reads the notes list from the newest note down to id oldest, following each page's
// Link rel="next", and returns the notes by id. A page that gets no answer or a 5xx is asked
// again for up to a minute.
func listDownTo(c *http.Client, notesURL string, oldest int64) (map[int64]notePayload, error) {
	base, err := url.Parse(notesURL)
	if err != nil {
		return nil, err
	}
	notes := map[int64]notePayload{}
	next := notesURL + "?limit=200"
	for next != "" {
		var page []struct {
			ID int64 `json:"id"`
			notePayload
		}
		var link string
		deadline := time.Now().Add(time.Minute)
		for {
			resp, err := c.Get(next)
			if err == nil {
				link = resp.Header.Get("Link")
				if resp.StatusCode == http.StatusOK {
					err = json.NewDecoder(resp.Body).Decode(&page)
				} else {
					err = fmt.Errorf("GET %s: status %d", next, resp.StatusCode)
				}
				resp.Body.Close()
				if err == nil || resp.StatusCode < 500 {
					break
				}
			}
			if time.Now().After(deadline) {
				return notes, err
			}
			time.Sleep(500 * time.Millisecond)
		}
		if err != nil {
			return notes, err
		}
		next = ""
		for _, n := range page {
			notes[n.ID] = n.notePayload
		}
		if len(page) > 0 && page[len(page)-1].ID > oldest {
			if ref, ok := strings.CutSuffix(link, `>; rel="next"`); ok && strings.HasPrefix(ref, "<") {
				u, err := base.Parse(ref[1:])
				if err != nil {
					return notes, fmt.Errorf("Link %q: %w", link, err)
				}
				next = u.String()
			}
		}
	}
	return notes, nil
}

// readNote GETs one note: its status and, with 200, the note.
func readNote(c *http.Client, url string) (int, notePayload, error) {
	var n notePayload
	resp, err := c.Get(url)
	if err != nil {
		return 0, n, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil && resp.StatusCode == http.StatusOK {
		err = json.Unmarshal(body, &n)
	}
	return resp.StatusCode, n, err
}

// waitFor polls ok every 200 ms until it holds and returns when the successful probe started
// (a docker exec takes a while on a loaded machine; the state changed after that start).
func waitFor(t *testing.T, limit time.Duration, what string, ok func() bool) time.Time {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		start := time.Now()
		if ok() {
			return start
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", limit, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// faultTable formats rows as the table in docs/infra.md.
func faultTable(rows []faultRow) string {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "engine\tfault\tload\trequests\tfailed (by method and status; 0 = no answer)\tfault lasted\tfailing after repair\tacknowledged writes lost")
	for _, r := range rows {
		kinds := make([]string, 0, len(r.failed))
		total := 0
		for k, n := range r.failed {
			kinds = append(kinds, k+"×"+strconv.Itoa(n))
			total += n
		}
		slices.Sort(kinds)
		failed := strconv.Itoa(total)
		if total > 0 {
			failed += " (" + strings.Join(kinds, ", ") + ")"
		}
		fmt.Fprintf(w, "%s\t%s\t%d clients\t%d\t%s\t%.1f s\t%.1f s\t%d\n", r.engine, r.fault, r.clients, r.requests, failed,
			r.lasted.Seconds(), r.afterRepair.Seconds(), r.lost)
	}
	w.Flush()
	return b.String()
}

// deployFaults drops the SSH connections of `pulumi up` (SIGKILL to every ssh client of the
// deploy user) once the deploy reaches each phase: the image build, the migration, the new
// replicas. The load runs throughout. The interrupted up may fail; a second up must converge
// with no manual cleanup, a third must find nothing to change, the new revision must answer and
// no replica or migration container of an earlier revision may be left.
func deployFaults(t *testing.T, s *stack, h *sshHost) []faultRow {
	prefix := s.prefix()
	// Each phase's deploy changes what that phase needs and no more: a new appVersion is an
	// image build (the slow part here); a new log level is a new revision of the same image
	// (migration and new replicas, no build).
	phases := []struct {
		name, key, value string
		reached          func(before []string) bool
	}{
		{"image build", "notes:appVersion", "e2e-fault-build", func([]string) bool {
			return exec.Command("pgrep", "-u", h.User, "-f", "docker build").Run() == nil
		}},
		{"migration", "notes:logLevel", "warn", func([]string) bool {
			out, _ := exec.Command("docker", "ps", "-aq", "--filter", "name=^"+prefix+"-migrate-").Output()
			return len(strings.TrimSpace(string(out))) > 0
		}},
		{"new replicas", "notes:logLevel", "info", func(before []string) bool {
			out, _ := exec.Command("docker", "ps", "-a", "--format", "{{.Names}}", "--filter", "name=^"+prefix+"-app-").Output()
			for _, name := range strings.Fields(string(out)) {
				if !slices.Contains(before, name) {
					return true
				}
			}
			return false
		}},
	}
	var rows []faultRow
	for _, ph := range phases {
		t.Run("ssh dropped during "+ph.name, func(t *testing.T) {
			before := s.stringsOutput("replicaNames")
			s.set(ph.key, ph.value)
			// 4 clients, not 16: the two image builds of each round compete with the load
			// for the machine's cores.
			row := faultUnderLoad(t, faultTarget{engine: "containers", s: s}, 4, "SSH dropped during "+ph.name, func() time.Time {
				done := make(chan error, 1)
				var out string
				go func() {
					var err error
					out, err = s.try(20*time.Minute, "", "up", "--yes", "--skip-preview", "--suppress-progress")
					done <- err
				}()
				killed := 0
			wait:
				for {
					select {
					case err := <-done:
						t.Fatalf("pulumi up finished (%v) before the deploy reached the %s", err, ph.name)
					default:
					}
					if ph.reached(before) {
						break wait
					}
					time.Sleep(50 * time.Millisecond)
				}
				killed = killSSHClients(t, h.User)
				err := <-done
				t.Logf("killed %d ssh clients during the %s; that up: %v\n%s", killed, ph.name, errString(err), errorLines(out, 8))
				timed(t, "converging up after the dropped connection", func() { out = s.up() })
				for _, line := range strings.Split(out, "\n") {
					if strings.Contains(line, "left by an interrupted pulumi up") {
						t.Logf("converging up: %s", strings.TrimSpace(line))
					}
				}
				return time.Now()
			})
			rows = append(rows, row)
			s.up("--expect-no-changes")
			rev := s.output("revision")
			resp := expectStatus(t, &http.Client{Timeout: 10 * time.Second}, s.output("healthUrl"), http.StatusOK)
			if got := resp.Header.Get("X-Notes-Revision"); got != rev {
				t.Errorf("X-Notes-Revision through nginx = %q after the converging up, want %q", got, rev)
			}
			out := docker(t, "ps", "-a", "--format", "{{.Names}}", "--filter", "label=com.notes-stack.stack="+s.name)
			replicas := s.stringsOutput("replicaNames")
			for _, name := range strings.Fields(out) {
				if strings.HasPrefix(name, prefix+"-migrate-") {
					t.Errorf("migration container %s left behind", name)
				}
				if strings.HasPrefix(name, prefix+"-app-") && !slices.Contains(replicas, name) {
					t.Errorf("replica %s of an earlier revision left behind (replicas now: %v)", name, replicas)
				}
			}
		})
	}
	return rows
}

// killSSHClients SIGKILLs every ssh client process logging in as user (the deploy's connections:
// the Docker provider's dial-stdio and the commands') and returns how many there were.
func killSSHClients(t *testing.T, user string) int {
	t.Helper()
	out, _ := exec.Command("pgrep", "-f", "^ssh .*-l "+user+" ").Output()
	pids := strings.Fields(string(out))
	for _, pid := range pids {
		exec.Command("kill", "-KILL", pid).Run()
	}
	return len(pids)
}
