package main

import (
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/notes-stack/notes/nginx"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
)

const (
	serviceT = "docker:index/service:Service"
	secretT  = "docker:index/secret:Secret"
	configT  = "docker:index/serviceConfig:ServiceConfig"
	networkT = "docker:index/network:Network"
)

// swarmConfig is the dev stack on engine swarm (every address, no published database port: what
// the engine supports) with the given changes.
func swarmConfig(t *testing.T, set map[string]string) map[string]string {
	t.Helper()
	cfg := stackConfig(t, "dev")
	cfg["notes:engine"] = "swarm"
	cfg["notes:bindAddress"] = "0.0.0.0"
	delete(cfg, "notes:dbPort")
	for k, v := range set {
		cfg[k] = v
	}
	return cfg
}

func TestSwarmStack(t *testing.T) {
	cfg := swarmConfig(t, map[string]string{"notes:replicas": "2"})
	m := mustDeploy(t, "dev", cfg)

	// Nothing of engine containers.
	if n := len(m.byType(containerT)); n != 0 {
		t.Errorf("engine swarm declares %d containers, want none", n)
	}
	for _, name := range []string{"notes-dev-nginx-config", "notes-dev-app-retire"} {
		if m.has(name) {
			t.Errorf("engine swarm declares %s", name)
		}
	}
	// No password in clear in any input.
	for _, r := range m.resources {
		for k, v := range r.Inputs {
			for _, pw := range []string{testDBPassword, testAppPassword} {
				if containsClear(v, pw) {
					t.Errorf("%s %s.%s holds a password in clear", r.Type, r.Name, k)
				}
			}
		}
	}

	// The manager: swarm init on the local daemon when needed, the node labels; everything on
	// the swarm waits for it.
	mgr := m.named(t, "notes-dev-swarm-manager")
	create := str(prop(mgr, "create"))
	for _, want := range []string{"docker swarm init --advertise-addr", " sh init dev 127.0.0.1", "--label-add"} {
		if !strings.Contains(create, want) {
			t.Errorf("manager command lacks %q:\n%s", want, create)
		}
	}
	if del := str(prop(mgr, "delete")); !strings.HasSuffix(del, " sh release dev") {
		t.Errorf("manager delete = %q, want the labels released and the swarm kept", del)
	}
	net := m.named(t, "notes-dev-net-network")
	if str(prop(net, "driver")) != "overlay" || !boolean(prop(net, "attachable")) {
		t.Errorf("network driver %q attachable %v, want an attachable overlay", str(prop(net, "driver")), boolean(prop(net, "attachable")))
	}
	if !dependsOnTransitively(m, net, mgr) {
		t.Error("the overlay network is created before the daemon is a swarm manager")
	}

	db, app, ng, backup := m.named(t, "notes-dev-db"), m.named(t, "notes-dev-app"), m.named(t, "notes-dev-nginx"), m.named(t, "notes-dev-backup")
	for _, s := range []*mockRes{db, app, ng, backup} {
		if !dependsOnTransitively(m, s, mgr) {
			t.Errorf("service %s does not wait for the swarm manager", s.Name)
		}
		if lbl := str(obj(prop(s, "taskSpec"))["containerSpec"].ObjectValue()["labels"].ArrayValue()[0].ObjectValue()["value"]); lbl != "dev" {
			t.Errorf("%s: task label com.notes-stack.stack = %q", s.Name, lbl)
		}
	}

	// Postgres: one task on the labelled node with its volume, stop-first, the password as a
	// file owned by the postgres user.
	dbSpec := containerSpec(db)
	if n := num(obj(obj(prop(db, "mode"))["replicated"])["replicas"]); n != 1 {
		t.Errorf("db replicas = %d, want 1", n)
	}
	if o := str(obj(prop(db, "updateConfig"))["order"]); o != "stop-first" {
		t.Errorf("db update order = %q, want stop-first", o)
	}
	if c := strs(obj(obj(prop(db, "taskSpec"))["placement"])["constraints"]); !slices.Equal(c, []string{"node.labels.com.notes-stack.dev.db==true"}) {
		t.Errorf("db placement = %v", c)
	}
	if env := obj(dbSpec["env"]); str(env["POSTGRES_PASSWORD_FILE"]) != dbPasswordFile {
		t.Errorf("db env = %v, want POSTGRES_PASSWORD_FILE", env)
	}
	checkSecretMount(t, m, db, dbPasswordFile, "999", 0o400, testDBPassword)
	if mounts := unsecret(dbSpec["mounts"]).ArrayValue(); len(mounts) == 0 || str(obj(mounts[0])["source"]) != "notes-dev-pgdata" {
		t.Errorf("db mounts = %v, want the pgdata volume", mounts)
	}
	if mode := str(obj(prop(db, "endpointSpec"))["mode"]); mode != "dnsrr" {
		t.Errorf("db endpoint mode = %q, want dnsrr (no IPVS for a VIP)", mode)
	}

	// The migration: scripts/migrate.sh on the overlay network, after the database.
	mig := m.named(t, "notes-dev-app-migrate")
	checkMigration(t, mig, urnOf(db))
	if !strings.Contains(str(prop(mig, "create")), "--network notes-dev-net") {
		t.Error("the migration container does not join the overlay network")
	}

	// The app: after the migration, dnsrr, start-first one at a time, health-gated, rolled back.
	if !dependsOn(app, urnOf(mig)) {
		t.Error("the app service does not wait for the migration")
	}
	checkAppService(t, m, app, 2)

	// The watcher runs next to the update, not after it; the smoke check after both and nginx.
	watch := m.named(t, "notes-dev-app-watch")
	if dependsOn(watch, urnOf(app)) || !dependsOn(watch, urnOf(mig)) {
		t.Error("the watcher must start with the app's update (after the migration, not after the service)")
	}
	rev := str(obj(containerSpec(app)["env"])["NOTES_REVISION"])
	if c := str(prop(watch, "create")); !strings.Contains(c, "docker service ps --no-trunc") || !strings.Contains(c, " sh notes-dev-app "+rev+" ") {
		t.Errorf("watcher = %.300q", c)
	}
	smoke := m.named(t, "notes-dev-smoke-check")
	for _, dep := range []*mockRes{app, watch, ng} {
		if !dependsOn(smoke, urnOf(dep)) {
			t.Errorf("smoke check does not wait for %s", dep.Name)
		}
	}
	sc := str(prop(smoke, "create"))
	for _, want := range []string{"X-Notes-Revision", "/readyz " + "30 " + rev, "docker service ps --no-trunc notes-dev-app"} {
		if !strings.Contains(sc, want) {
			t.Errorf("smoke check lacks %q:\n%s", want, sc)
		}
	}

	// Nginx: the app by its service name, resolved at run time; host-mode ports from at most
	// one task per node; nothing of the app among its inputs.
	files := swarmNginxFiles(t, m)
	for _, want := range []string{"notes-dev-app", "resolver 127.0.0.11", "valid=1s"} {
		if !strings.Contains(files["conf.d/notes.conf"]+files["nginx.conf"], want) {
			t.Errorf("nginx configuration lacks %q", want)
		}
	}
	ports := unsecret(obj(prop(ng, "endpointSpec"))["ports"]).ArrayValue()
	if len(ports) != 1 || str(obj(ports[0])["publishMode"]) != "host" || num(obj(ports[0])["publishedPort"]) != 8080 || num(obj(ports[0])["targetPort"]) != 80 {
		t.Errorf("nginx ports = %v, want 8080->80 in host mode", ports)
	}
	if n := num(obj(obj(prop(ng, "taskSpec"))["placement"])["maxReplicas"]); n != 1 {
		t.Errorf("nginx maxReplicas per node = %d, want 1", n)
	}
	if o := str(obj(prop(ng, "updateConfig"))["order"]); o != "stop-first" {
		t.Errorf("nginx update order = %q, want stop-first (the new task needs the ports)", o)
	}
	for _, r := range []*mockRes{app, mig, m.named(t, "notes-dev-app-image")} {
		if dependsOnTransitively(m, ng, r) {
			t.Errorf("nginx depends on %s", r.Name)
		}
	}

	// Backups: the script as a config, the password in a .pgpass secret, the rest in libpq's
	// environment.
	bSpec := containerSpec(backup)
	env := obj(bSpec["env"])
	for _, k := range []string{"PGHOST", "PGUSER", "PGDATABASE", "PGPASSFILE", "BACKUP_INTERVAL", "BACKUP_RETENTION"} {
		if str(env[resource.PropertyKey(k)]) == "" {
			t.Errorf("backup env lacks %s: %v", k, env)
		}
	}
	if _, ok := env["PGPASSWORD"]; ok {
		t.Error("backup env holds PGPASSWORD")
	}
	checkSecretMount(t, m, backup, swarmPGPassFile, "0", 0o400, testDBPassword)

	// Content-hashed names: a secret's name is not its value.
	for _, s := range m.byType(secretT) {
		if n := str(prop(s, "name")); !strings.HasPrefix(n, "notes-dev-") || len(n) < len("notes-dev-")+13 {
			t.Errorf("secret %s is named %q, want notes-dev-<role>-<hash>", s.Name, n)
		}
		if !s.DBRDefined || s.DBR {
			t.Errorf("secret %s: deleteBeforeReplace must be false (the new secret first)", s.Name)
		}
	}
}

// containerSpec is a service's taskSpec.containerSpec.
func containerSpec(s *mockRes) map[string]resource.PropertyValue {
	out := map[string]resource.PropertyValue{}
	for k, v := range obj(obj(prop(s, "taskSpec"))["containerSpec"]) {
		out[string(k)] = v
	}
	return out
}

func checkAppService(t *testing.T, m *mocks, app *mockRes, replicas int) {
	t.Helper()
	spec := containerSpec(app)
	if n := num(obj(obj(prop(app, "mode"))["replicated"])["replicas"]); n != replicas {
		t.Errorf("app replicas = %d, want %d", n, replicas)
	}
	if mode := str(obj(prop(app, "endpointSpec"))["mode"]); mode != "dnsrr" {
		t.Errorf("app endpoint mode = %q, want dnsrr", mode)
	}
	uc := obj(prop(app, "updateConfig"))
	if str(uc["order"]) != "start-first" || num(uc["parallelism"]) != 1 || str(uc["failureAction"]) != "rollback" {
		t.Errorf("app updateConfig = %v, want start-first, parallelism 1, rollback", uc)
	}
	hc := obj(spec["healthcheck"])
	if tests := strings.Join(strs(hc["tests"]), " "); tests != "CMD /notes healthcheck --url http://127.0.0.1:8080/startedz" {
		t.Errorf("app healthcheck = %s", tests)
	}
	monitor := duration(t, str(uc["monitor"]))
	if limit := duration(t, str(hc["interval"])) * time.Duration(num(hc["retries"])); monitor <= limit {
		t.Errorf("monitor %v is not longer than the healthcheck's interval x retries %v", monitor, limit)
	}
	// Stop grace > drain delay (5s) + shutdown timeout (15s) + SHUTDOWN_LINGER.
	env := obj(spec["env"])
	linger := duration(t, str(env["SHUTDOWN_LINGER"]))
	if g := duration(t, str(spec["stopGracePeriod"])); g <= 20*time.Second+linger {
		t.Errorf("stop grace %v, want more than 20s + linger %v", g, linger)
	}
	if str(obj(prop(app, "rollbackConfig"))["order"]) != "start-first" {
		t.Error("app rollback is not start-first")
	}
	if cc := obj(prop(app, "convergeConfig")); str(cc["timeout"]) == "" {
		t.Error("app has no convergeConfig: pulumi up would not wait for the update")
	}
	if str(env["DATABASE_URL_FILE"]) != databaseURLFile || len(str(env["NOTES_REVISION"])) != 8 {
		t.Errorf("app env = %v", env)
	}
	for k, v := range env {
		if containsAnywhere(v, testAppPassword) || containsAnywhere(v, testDBPassword) {
			t.Errorf("app env %s holds a password", k)
		}
	}
	checkSecretMount(t, m, app, databaseURLFile, "65532", 0o400, "postgres://notes_app:")
	if str(spec["user"]) != serviceUser || !boolean(spec["readOnly"]) || !slices.Equal(strs(spec["capDrops"]), []string{"ALL"}) {
		t.Errorf("app task user %q readOnly %v capDrops %v, want non-root, read-only, no capabilities",
			str(spec["user"]), boolean(spec["readOnly"]), strs(spec["capDrops"]))
	}
	if img := str(spec["image"]); img != "notes-service:dev" {
		t.Errorf("app image = %q", img)
	}
}

// checkSecretMount: service s mounts a Docker secret at path (uid, mode) whose data holds want.
func checkSecretMount(t *testing.T, m *mocks, s *mockRes, path, uid string, mode int, want string) {
	t.Helper()
	for _, sec := range unsecret(containerSpec(s)["secrets"]).ArrayValue() {
		o := obj(sec)
		if str(o["fileName"]) != path {
			continue
		}
		if str(o["fileUid"]) != uid || num(o["fileMode"]) != mode {
			t.Errorf("%s: secret %s uid %q mode %o, want %s %o", s.Name, path, str(o["fileUid"]), num(o["fileMode"]), uid, mode)
		}
		for _, r := range m.byType(secretT) {
			if str(prop(r, "name")) != str(o["secretName"]) {
				continue
			}
			data := prop(r, "data")
			if !isSecret(data) {
				t.Errorf("secret %s: data is not a Pulumi secret", r.Name)
			}
			if !strings.Contains(b64(t, str(data)), want) {
				t.Errorf("secret %s does not hold the value", r.Name)
			}
			return
		}
		t.Errorf("%s: secret %s names no declared secret", s.Name, path)
		return
	}
	t.Errorf("%s mounts no secret at %s", s.Name, path)
}

func swarmNginxFiles(t *testing.T, m *mocks) map[string]string {
	t.Helper()
	files := map[string]string{}
	ng := m.named(t, "notes-dev-nginx")
	for _, c := range unsecret(containerSpec(ng)["configs"]).ArrayValue() {
		o := obj(c)
		for _, r := range m.byType(configT) {
			if str(prop(r, "name")) == str(o["configName"]) {
				files[strings.TrimPrefix(str(o["fileName"]), "/etc/nginx/")] = b64(t, str(prop(r, "data")))
			}
		}
	}
	if len(files) != 3 {
		t.Fatalf("nginx configs = %v, want nginx.conf, conf.d/notes.conf, conf.d/default.conf", keys(files))
	}
	return files
}

func duration(t *testing.T, s string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatalf("duration %q: %v", s, err)
	}
	return d
}

func TestSwarmFailedMigrationChangesNoService(t *testing.T) {
	m := &mocks{migrationExit: 3}
	err := deploy(t, "dev", swarmConfig(t, nil), m)
	if err == nil || !strings.Contains(err.Error(), "exited with status 3") {
		t.Fatalf("deploy error = %v, want the migration's exit status", err)
	}
	if m.has("notes-dev-app") {
		t.Error("the app service was declared after a failed migration")
	}
}

// An unchanged up keeps the revision; an app deploy changes it and the app service, never nginx.
func TestSwarmAppDeployKeepsNginx(t *testing.T) {
	deployed := func(version string) *mocks {
		return mustDeploy(t, "dev", swarmConfig(t, map[string]string{"notes:appVersion": version}))
	}
	a, again, b := deployed("v1"), deployed("v1"), deployed("v2")
	rev := func(m *mocks) string {
		return str(obj(containerSpec(m.named(t, "notes-dev-app"))["env"])["NOTES_REVISION"])
	}
	if rev(a) != rev(again) {
		t.Errorf("the revision changed without a change: %s -> %s", rev(a), rev(again))
	}
	if rev(a) == rev(b) {
		t.Errorf("the revision %s did not change with appVersion", rev(a))
	}
	for _, k := range []string{"taskSpec", "endpointSpec", "updateConfig", "mode"} {
		if !prop(a.named(t, "notes-dev-nginx"), k).DeepEquals(prop(b.named(t, "notes-dev-nginx"), k)) {
			t.Errorf("nginx service %s changed with the app deploy", k)
		}
	}
	// The provider replaces a service (deleting it first: the name is fixed) when its tasks'
	// labels or sysctls change, or when sysctl is unset (unknown in a preview): an app deploy
	// changes neither, and every service sets sysctl.
	for _, name := range []string{"notes-dev-app", "notes-dev-db", "notes-dev-nginx", "notes-dev-backup"} {
		before, after := containerSpec(a.named(t, name)), containerSpec(b.named(t, name))
		for _, k := range []string{"labels", "sysctl"} {
			if _, set := after[k]; !set {
				t.Errorf("%s: taskSpec.containerSpec.%s is not set", name, k)
			}
			if !before[k].DeepEquals(after[k]) {
				t.Errorf("%s: taskSpec.containerSpec.%s changed with the app deploy (the provider would replace the service)", name, k)
			}
		}
	}
}

func TestSwarmProtectAndTLS(t *testing.T) {
	m := mustDeploy(t, "dev", swarmConfig(t, map[string]string{
		"notes:protect": "true", "notes:tls": "provided", "notes:domain": "notes.test", "notes:httpsPort": "8443",
		"notes:tlsCert": "-----BEGIN CERTIFICATE-----\nCERT\n-----END CERTIFICATE-----\n",
		"notes:tlsKey":  "-----BEGIN PRIVATE KEY-----\nKEY-SECRET\n-----END PRIVATE KEY-----\n",
	}))
	if db := m.named(t, "notes-dev-db"); !db.Protect {
		t.Error("the database service is not protected with notes:protect")
	}
	for _, v := range m.byType(volumeT) {
		if !v.Protect || !v.Retain {
			t.Errorf("volume %s not protected and retained", v.Name)
		}
	}
	ng := m.named(t, "notes-dev-nginx")
	checkSecretMount(t, m, ng, nginxTLSKey, "101", 0o400, "KEY-SECRET")
	if n := len(unsecret(obj(prop(ng, "endpointSpec"))["ports"]).ArrayValue()); n != 2 {
		t.Errorf("nginx publishes %d ports, want 80 and 443", n)
	}
	for _, r := range m.resources {
		for k, v := range r.Inputs {
			if containsClear(v, "KEY-SECRET") {
				t.Errorf("%s.%s holds the TLS key in clear", r.Name, k)
			}
		}
	}
}

// b64 decodes a Docker secret's or config's data.
func b64(t *testing.T, s string) string {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatalf("data is not base64: %v", err)
	}
	return string(b)
}

func TestSwarmExternalDatabase(t *testing.T) {
	cfg := swarmConfig(t, map[string]string{
		"notes:databaseUrl": "postgres://owner:" + testDBPassword + "@db.example.com:5432/notes?sslmode=require",
	})
	delete(cfg, "notes:dbPassword")
	m := mustDeploy(t, "dev", cfg)
	if m.has("notes-dev-db") || m.has("notes-dev-net-pgdata") || m.has("notes-dev-db-init-password") {
		t.Error("an external database must not create a Postgres service, its volume or its secret")
	}
	checkSecretMount(t, m, m.named(t, "notes-dev-app"), databaseURLFile, "65532", 0o400, "@db.example.com:5432/notes?sslmode=require")
	if h := str(obj(containerSpec(m.named(t, "notes-dev-backup"))["env"])["PGHOST"]); h != "db.example.com" {
		t.Errorf("backup PGHOST = %q, want the external host", h)
	}
	for _, r := range m.resources {
		for k, v := range r.Inputs {
			if containsClear(v, testDBPassword) || containsClear(v, testAppPassword) {
				t.Errorf("%s.%s holds a password in clear", r.Name, k)
			}
		}
	}
}

// tls=acme on engine swarm: a certbot service next to nginx (the edge node, sharing its
// volumes), the placeholder as secrets (its key random and secret), the private CA as a config.
func TestSwarmACME(t *testing.T) {
	ca, _, err := nginx.SelfSignedCertificate([]string{"ca.internal"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	m := mustDeploy(t, "dev", swarmConfig(t, map[string]string{
		"notes:tls": "acme", "notes:domain": "notes.test", "notes:httpsPort": "8443", "notes:httpPort": "80",
		"notes:acmeEmail": "ops@example.com", "notes:acmeServer": "https://ca.internal/dir", "notes:acmeCaBundle": string(ca),
	}))
	ng, cb := m.named(t, "notes-dev-nginx"), m.named(t, "notes-dev-certbot")
	edge := "node.labels.com.notes-stack.dev.edge==true"
	for _, s := range []*mockRes{ng, cb} {
		if c := strs(obj(obj(prop(s, "taskSpec"))["placement"])["constraints"]); !slices.Equal(c, []string{edge}) {
			t.Errorf("%s placement %v, want %s", s.Name, c, edge)
		}
		mounts := fmt.Sprint(containerSpec(s)["mounts"])
		for _, want := range []string{letsencryptDir, acmeWebroot} {
			if !strings.Contains(mounts, want) {
				t.Errorf("%s does not mount %s: %s", s.Name, want, mounts)
			}
		}
	}
	if env := fmt.Sprint(containerSpec(ng)["env"]); !strings.Contains(env, "NOTES_CERT_PLACEHOLDER") || !strings.Contains(env, "notes.test") {
		t.Errorf("nginx env %s", env)
	}
	checkSecretMount(t, m, ng, swarmPlaceholderDir+"/privkey.pem", "101", 0o400, "PRIVATE KEY")
	checkSecretMount(t, m, ng, swarmPlaceholderDir+"/fullchain.pem", "0", 0o444, "CERTIFICATE")
	if !strings.Contains(fmt.Sprint(containerSpec(ng)["configs"]), "/docker-entrypoint.d/90-notes-cert-watch.sh") {
		t.Error("nginx lacks the cert-watch script")
	}
	args := strings.Join(strs(containerSpec(cb)["args"]), " ")
	if !strings.Contains(args, "--server https://ca.internal/dir ") || !strings.Contains(args, "-d notes.test") {
		t.Errorf("certbot args %q", args)
	}
	if env := fmt.Sprint(containerSpec(cb)["env"]); !strings.Contains(env, certbotCABundle) {
		t.Errorf("certbot env %s lacks REQUESTS_CA_BUNDLE", env)
	}
	if hc := containerSpec(cb)["healthcheck"]; !unsecret(hc).IsNull() {
		t.Errorf("certbot has a healthcheck (Swarm would replace an unhealthy task, which runs certbot again at once): %v", hc)
	}
	smoke := m.named(t, "notes-dev-smoke-check")
	if trust := str(obj(prop(smoke, "environment"))[smokeTrustEnv]); !strings.Contains(trust, strings.TrimSpace(string(ca))) {
		t.Errorf("the smoke check does not trust the private CA: %q", trust)
	}
}
