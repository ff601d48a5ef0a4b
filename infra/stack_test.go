package main

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/notes-stack/notes/nginx"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

const (
	containerT = "docker:index/container:Container"
	commandT   = "command:local:Command"
	volumeT    = "docker:index/volume:Volume"
	providerT  = "pulumi:providers:docker"
)

func TestDevStack(t *testing.T) {
	cfg := stackConfig(t, "dev")
	m := mustDeploy(t, "dev", cfg)

	for _, name := range []string{
		"notes-dev-host-docker", "notes-dev-net-network", "notes-dev-net-pgdata", "notes-dev-net-backups",
		"notes-dev-db-image", "notes-dev-db-container", "notes-dev-app-image", "notes-dev-app-revision",
		"notes-dev-app-migrate", "notes-dev-app-1", "notes-dev-nginx-image", "notes-dev-nginx-container",
		"notes-dev-nginx-config", "notes-dev-backup-container", "notes-dev-smoke-check",
	} {
		m.named(t, name)
	}
	if m.has("notes-dev-host-bootstrap") {
		t.Error("dev stack must not bootstrap over SSH")
	}
	if got := len(replicas(m, "dev")); got != 1 {
		t.Errorf("dev replicas = %d, want 1", got)
	}

	prov := m.named(t, "notes-dev-host-docker")
	if got := str(prop(prov, "host")); got != "unix:///var/run/docker.sock" {
		t.Errorf("provider host = %q", got)
	}

	// Postgres: published on 127.0.0.1 only.
	db := m.named(t, "notes-dev-db-container")
	ps := ports(db)
	if len(ps) != 1 || str(ps[0]["ip"]) != "127.0.0.1" || num(ps[0]["internal"]) != 5432 || num(ps[0]["external"]) != 5433 {
		t.Errorf("dev db ports = %v, want one 127.0.0.1:5433->5432", ps)
	}
	// Nginx: published on 127.0.0.1:8080 only, no HTTPS.
	ng := m.named(t, "notes-dev-nginx-container")
	ps = ports(ng)
	if len(ps) != 1 || str(ps[0]["ip"]) != "127.0.0.1" || num(ps[0]["external"]) != 8080 || num(ps[0]["internal"]) != 80 {
		t.Errorf("dev nginx ports = %v, want one 127.0.0.1:8080->80", ps)
	}

	// Volumes are not protected in dev.
	for _, v := range m.byType(volumeT) {
		if v.Protect || v.Retain {
			t.Errorf("dev volume %s: protect=%v retainOnDelete=%v, want false", v.Name, v.Protect, v.Retain)
		}
	}
	commonChecks(t, m, "dev", cfg)
}

func TestProdStack(t *testing.T) {
	cfg := stackConfig(t, "prod")
	m := mustDeploy(t, "prod", cfg)

	if got := len(replicas(m, "prod")); got != 2 {
		t.Errorf("prod replicas = %d, want 2", got)
	}
	// No published database port.
	db := m.named(t, "notes-prod-db-container")
	if ps := ports(db); len(ps) != 0 {
		t.Errorf("prod db publishes ports %v, want none", ps)
	}
	// Nginx publishes 80 and 443 on all addresses.
	ng := m.named(t, "notes-prod-nginx-container")
	var published []string
	for _, p := range ports(ng) {
		published = append(published, fmt.Sprintf("%s:%d->%d", str(p["ip"]), num(p["external"]), num(p["internal"])))
	}
	sort.Strings(published)
	if strings.Join(published, ",") != "0.0.0.0:443->443,0.0.0.0:80->80" {
		t.Errorf("prod nginx ports = %v", published)
	}
	// ACME: certbot with the shared volumes; the cert-watch script in nginx's configuration
	// volume, started before the image's entrypoint.
	m.named(t, "notes-prod-nginx-certbot")
	m.named(t, "notes-prod-net-letsencrypt")
	m.named(t, "notes-prod-net-acme-webroot")
	if files := renderedFiles(t, m.named(t, "notes-prod-nginx-init")); files["notes-cert-watch.sh"] != certWatchScript {
		t.Errorf("nginx-init writes %v, want notes-cert-watch.sh in acme mode", keys(files))
	}
	if ep := strings.Join(strs(prop(ng, "entrypoints")), " "); !strings.Contains(ep, nginxCertWatch+" && exec /docker-entrypoint.sh") {
		t.Errorf("nginx entrypoint %q does not start the cert watcher", ep)
	}

	// SSH host, bootstrap before the provider.
	prov := m.named(t, "notes-prod-host-docker")
	if got := str(prop(prov, "host")); got != "ssh://deploy@host.example.com" {
		t.Errorf("provider host = %q", got)
	}
	opts := strs(prop(prov, "sshOpts"))
	if !strings.Contains(strings.Join(opts, " "), "BatchMode=yes") || !strings.Contains(strings.Join(opts, " "), "StrictHostKeyChecking=yes") {
		t.Errorf("provider sshOpts = %v", opts)
	}
	boot := m.named(t, "notes-prod-host-bootstrap")
	if !dependsOn(prov, urnOf(boot)) {
		t.Error("the docker provider does not depend on the bootstrap command")
	}
	create := str(prop(boot, "create"))
	if !strings.HasPrefix(create, "ssh ") || !strings.Contains(create, "-l deploy -p 22 -- host.example.com") {
		t.Errorf("bootstrap create = %q", create)
	}
	if stdin := str(prop(boot, "stdin")); !strings.Contains(stdin, "command -v docker") || !strings.Contains(stdin, "apt-get install") {
		t.Errorf("bootstrap script does not check for docker before installing it:\n%s", stdin)
	}
	// Commands that reach the host go over ssh.
	if c := str(prop(m.named(t, "notes-prod-nginx-config"), "create")); !strings.HasPrefix(c, "ssh ") || !strings.Contains(c, "docker exec -i notes-prod-nginx") {
		t.Errorf("nginx config command = %.200q", c)
	}

	// Data volumes protected and retained; nginx's configuration volume is rendered again by
	// every up, and goes with the stack.
	vols := m.byType(volumeT)
	if len(vols) != 5 {
		t.Errorf("prod volumes = %d, want pgdata, backups, letsencrypt, acme-webroot, nginx-conf", len(vols))
	}
	for _, v := range vols {
		data := v.Name != "notes-prod-nginx-conf"
		if v.Protect != data || v.Retain != data {
			t.Errorf("prod volume %s: protect=%v retainOnDelete=%v, want %v", v.Name, v.Protect, v.Retain, data)
		}
	}
	commonChecks(t, m, "prod", cfg)
}

// commonChecks are the invariants of every stack.
func commonChecks(t *testing.T, m *mocks, stack string, cfg map[string]string) {
	t.Helper()
	name := func(role string) string { return "notes-" + stack + "-" + role }

	// No password in clear anywhere; every env with a credential is secret.
	for _, r := range m.resources {
		for k, v := range r.Inputs {
			for _, pw := range []string{testDBPassword, testAppPassword, testAPIToken} {
				if containsClear(v, pw) {
					t.Errorf("%s %s.%s holds a password in clear", r.Type, r.Name, k)
				}
			}
		}
		if r.Type == providerT {
			for k, v := range r.Inputs {
				if isSecret(v) {
					t.Errorf("provider input %s is a secret: providers' config is stored in clear", k)
				}
			}
		}
	}
	for _, c := range m.byType(containerT) {
		envs := prop(c, "envs")
		if isSecret(envs) {
			continue
		}
		if envs.IsArray() {
			for _, e := range envs.ArrayValue() {
				if s := str(e); (strings.Contains(s, "PASSWORD=") || strings.HasPrefix(s, "DATABASE_URL=")) && !isSecret(e) {
					t.Errorf("container %s: env %s is not secret", c.Name, s[:strings.Index(s, "=")])
				}
			}
		}
	}

	// Postgres: healthcheck pg_isready, Wait, restart, volume.
	db := m.named(t, name("db-container"))
	hc := obj(prop(db, "healthcheck"))
	if !strings.Contains(strings.Join(strs(hc["tests"]), " "), "pg_isready") {
		t.Errorf("db healthcheck = %v", hc)
	}
	if !boolean(prop(db, "wait")) || str(prop(db, "restart")) == "" || str(prop(db, "restart")) == "no" {
		t.Error("db container must wait for healthy and have a restart policy")
	}
	// The password reaches Postgres as a file (POSTGRES_PASSWORD_FILE), never in the environment.
	if !slices.Contains(strs(prop(db, "envs")), "POSTGRES_PASSWORD_FILE="+dbPasswordFile) {
		t.Error("db container lacks POSTGRES_PASSWORD_FILE")
	}
	for _, k := range []string{"envs", "labels", "command", "entrypoints"} {
		if containsAnywhere(prop(db, k), testDBPassword) {
			t.Errorf("db container %s holds dbPassword", k)
		}
	}
	checkSecretUpload(t, db, dbPasswordFile, testDBPassword, "0400")

	// Migration: a throwaway container on the host (scripts/migrate.sh), migrate up as the
	// owner, provisions the app role; the secrets only on its secret stdin, as 0400 files.
	mig := m.named(t, name("app-migrate"))
	checkMigration(t, mig, urnOf(db))

	// Replicas: under the stack's alias, with the revision.
	reps := replicas(m, stack)
	for i, r := range reps {
		n := str(prop(r, "name"))
		if n != fmt.Sprintf("notes-%s-app-%d-0a1b2c3d", stack, i+1) {
			t.Errorf("replica name = %q, want notes-%s-app-%d-<revision>", n, stack, i+1)
		}
		checkReplica(t, r, mig)
		// Not name("app"): the alias of replicas deployed before the network split (ReplicaAlias).
		if aliases := strs(obj(unsecret(prop(r, "networksAdvanced")).ArrayValue()[0])["aliases"]); !slices.Equal(aliases, []string{name("replicas")}) {
			t.Errorf("%s: network aliases = %v, want [%s]", r.Name, aliases, name("replicas"))
		}
	}

	// Nginx config: the replicas by their alias, resolved at run time; nothing of the app in it.
	conf := m.named(t, name("nginx-config"))
	files := renderedFiles(t, conf)
	if _, ok := files["nginx.conf"]; !ok {
		t.Errorf("rendered files = %v, want nginx.conf", keys(files))
	}
	notesConf := files["conf.d/notes.conf"]
	for _, want := range []string{name("replicas"), ":8080", "resolver 127.0.0.11", "valid=1s"} {
		if !strings.Contains(notesConf, want) && !strings.Contains(files["nginx.conf"], want) {
			t.Errorf("nginx configuration lacks %q", want)
		}
	}
	if strings.Contains(notesConf, "0a1b2c3d") {
		t.Error("nginx configuration names a replica revision")
	}
	create := str(prop(conf, "create"))
	for _, s := range []string{"docker exec -i " + name("nginx"), "nginx -t", "nginx -s reload", "rm -f /etc/nginx/conf.d/default.conf"} {
		if !strings.Contains(create, s) {
			t.Errorf("nginx config command lacks %q", s)
		}
	}
	ng := m.named(t, name("nginx-container"))
	for _, r := range reps {
		// nginx does not depend on the app: an app deploy never replaces it. Its configuration
		// waits for the replicas (the alias has an address when it is first installed), but
		// none of its inputs come from the app (TestAppDeployKeepsTheNginxConfig).
		if dependsOn(ng, urnOf(r)) {
			t.Errorf("nginx container depends on replica %s", r.Name)
		}
		if !dependsOn(conf, urnOf(r)) {
			t.Errorf("nginx config is installed before replica %s exists", r.Name)
		}
	}
	for _, app := range []string{"app-image", "app-migrate", "app-revision"} {
		if dependsOn(ng, urnOf(m.named(t, name(app)))) {
			t.Errorf("nginx container depends on %s", app)
		}
	}
	if !dependsOn(conf, urnOf(ng)) {
		t.Error("nginx config does not depend on the nginx container")
	}
	if tests := strs(obj(prop(ng, "healthcheck"))["tests"]); !strings.Contains(strings.Join(tests, " "), "/nginx-health") {
		t.Errorf("nginx healthcheck = %v", tests)
	}
	if !boolean(prop(ng, "wait")) || str(prop(ng, "restart")) != "unless-stopped" {
		t.Error("nginx must wait for healthy and restart unless-stopped")
	}

	// The proof after the config and the replicas: health, migration, revision through nginx.
	smoke := m.named(t, name("smoke-check"))
	for _, dep := range append([]*mockRes{conf}, reps...) {
		if !dependsOn(smoke, urnOf(dep)) {
			t.Errorf("smoke check does not run after %s", dep.Name)
		}
	}
	sc := str(prop(smoke, "create"))
	for _, want := range []string{"/readyz", "X-Notes-Revision", "com.notes-stack.revision", " 0a1b2c3d 0 30 notes-" + stack + "-app-1-0a1b2c3d"} {
		if !strings.Contains(sc, want) {
			t.Errorf("smoke check lacks %q:\n%s", want, sc)
		}
	}

	// Backups.
	if b := m.named(t, name("backup-container")); true {
		env := strings.Join(strs(prop(b, "envs")), " ")
		if !strings.Contains(env, "BACKUP_RETENTION=") || !strings.Contains(env, "BACKUP_INTERVAL=") {
			t.Errorf("backup env = %v", strs(prop(b, "envs")))
		}
		if !strings.Contains(fmt.Sprint(prop(b, "uploads")), "pg_dump --format=custom") {
			t.Error("backup script with pg_dump -Fc is not uploaded")
		}
	}
}

func checkReplica(t *testing.T, r, mig *mockRes) {
	t.Helper()
	if !dependsOn(r, urnOf(mig)) {
		t.Errorf("%s does not depend on the migration", r.Name)
	}
	if !r.DBRDefined || r.DBR {
		t.Errorf("%s: deleteBeforeReplace must be explicitly false (create-before-delete)", r.Name)
	}
	if ps := ports(r); len(ps) != 0 {
		t.Errorf("%s publishes ports %v", r.Name, ps)
	}
	if u := str(prop(r, "user")); u != "65532:65532" {
		t.Errorf("%s user = %q, want non-root 65532:65532", r.Name, u)
	}
	if _, ok := obj(prop(r, "tmpfs"))["/tmp"]; !ok {
		t.Errorf("%s: no tmpfs /tmp", r.Name)
	}
	if d := strs(obj(prop(r, "capabilities"))["drops"]); len(d) != 1 || d[0] != "ALL" {
		t.Errorf("%s: capabilities drops = %v, want [ALL]", r.Name, d)
	}
	if so := strs(prop(r, "securityOpts")); len(so) != 1 || so[0] != "no-new-privileges" {
		t.Errorf("%s: securityOpts = %v", r.Name, so)
	}
	if num(prop(r, "memory")) <= 0 || str(prop(r, "cpus")) == "" {
		t.Errorf("%s: no memory/cpu limit", r.Name)
	}
	lo := obj(prop(r, "logOpts"))
	if str(lo["max-size"]) == "" || str(lo["max-file"]) == "" {
		t.Errorf("%s: no log rotation: %v", r.Name, lo)
	}
	if !boolean(prop(r, "wait")) {
		t.Errorf("%s: wait is not set", r.Name)
	}
	hc := strs(obj(prop(r, "healthcheck"))["tests"])
	if strings.Join(hc, " ") != "CMD /notes healthcheck --url http://127.0.0.1:8080/startedz" {
		t.Errorf("%s: healthcheck = %v", r.Name, hc)
	}
	// Stop grace > drain delay (5s) + shutdown timeout (15s).
	if g := num(prop(r, "destroyGraceSeconds")); g <= 20 {
		t.Errorf("%s: destroyGraceSeconds = %d, want > 20", r.Name, g)
	}
	if g := num(prop(r, "stopTimeout")); g <= 20 {
		t.Errorf("%s: stopTimeout = %d, want > 20", r.Name, g)
	}
	if rs := str(prop(r, "restart")); rs != "unless-stopped" {
		t.Errorf("%s: restart = %q", r.Name, rs)
	}
	envs := strs(prop(r, "envs"))
	for _, want := range []string{"DATABASE_URL_FILE=" + databaseURLFile, "NOTES_REVISION=0a1b2c3d",
		"WRITE_AUTH=modify", "API_TOKENS_FILE=" + apiTokensFile, "TRUSTED_PROXIES=" + testSubnet} {
		if !slices.Contains(envs, want) {
			t.Errorf("%s: env lacks %s: %v", r.Name, want, envs)
		}
	}
	for _, k := range []string{"envs", "labels", "command", "entrypoints"} {
		if containsAnywhere(prop(r, k), testDBPassword) || containsAnywhere(prop(r, k), testAppPassword) || containsAnywhere(prop(r, k), testAPIToken) {
			t.Errorf("%s: %s holds a password", r.Name, k)
		}
	}
	checkSecretUpload(t, r, databaseURLFile, "postgres://notes_app:", "0440")
	checkSecretUpload(t, r, apiTokensFile, testAPIToken+"\n", "0440")
	if g := strs(prop(r, "groupAdds")); !slices.Equal(g, []string{"0"}) {
		t.Errorf("%s: groupAdds = %v, want [0] (the group of the uploaded secret file)", r.Name, g)
	}
	if img := str(prop(r, "image")); !strings.HasPrefix(img, "sha256:") {
		t.Errorf("%s: image = %q, want the built image id", r.Name, img)
	}
	if n := len(unsecret(prop(r, "networksAdvanced")).ArrayValue()); n != 2 {
		t.Errorf("%s: on %d networks, want the app and data networks (TestEveryContainerHardened)", r.Name, n)
	}
}

// checkMigration: the migration runs scripts/migrate.sh on the host after the database, with
// its options and secrets as described there.
func checkMigration(t *testing.T, mig *mockRes, dbURN string) {
	t.Helper()
	create := str(prop(mig, "create"))
	for _, want := range []string{"docker create", "docker cp - ", "docker start -a", "docker rm -f -v", "--user 65532:65532",
		"--cap-drop ALL", "APP_DB_ROLE=notes_app", "DATABASE_URL_FILE=" + databaseURLFile, "APP_DB_PASSWORD_FILE=" + appPasswordFile} {
		if !strings.Contains(create, want) {
			t.Errorf("migration command lacks %q:\n%s", want, create)
		}
	}
	if strings.Contains(create, testDBPassword) || strings.Contains(create, testAppPassword) {
		t.Error("migration command line holds a password")
	}
	stdin := prop(mig, "stdin")
	if !isSecret(stdin) {
		t.Error("migration stdin (the secrets) is not secret")
	}
	files := untarB64(t, str(stdin))
	if got := files["run/secrets/app-db-password"]; got.content != testAppPassword || got.mode != 0o400 || got.uid != 65532 {
		t.Errorf("migration app password file = %+v, want the password, 0400, uid 65532", got)
	}
	if got := files["run/secrets/database-url"]; !strings.Contains(got.content, "postgres://notes:") || got.mode != 0o400 || got.uid != 65532 {
		t.Errorf("migration database URL file = %+v, want the owner URL, 0400, uid 65532", got)
	}
	if dbURN != "" && !dependsOn(mig, dbURN) {
		t.Error("migration does not depend on the database")
	}
}

func keys(m map[string]string) []string {
	var k []string
	for key := range m {
		k = append(k, key)
	}
	sort.Strings(k)
	return k
}

func TestFailedMigrationFailsTheDeploy(t *testing.T) {
	m := &mocks{migrationExit: 3}
	err := deploy(t, "dev", stackConfig(t, "dev"), m)
	if err == nil || !strings.Contains(err.Error(), "exited with status 3") {
		t.Fatalf("deploy error = %v, want the migration's exit status", err)
	}
	if len(replicas(m, "dev")) != 0 {
		t.Error("replicas were created after a failed migration")
	}
}

func TestExternalDatabase(t *testing.T) {
	cfg := stackConfig(t, "dev")
	delete(cfg, "notes:dbPassword")
	delete(cfg, "notes:dbPort")
	cfg["notes:databaseUrl"] = "postgres://owner:" + testDBPassword + "@db.example.com:5432/notes?sslmode=require"
	m := mustDeploy(t, "ext", cfg)
	if m.has("notes-ext-db-container") || m.has("notes-ext-net-pgdata") {
		t.Error("an external database must not create a Postgres container or pgdata volume")
	}
	for _, r := range replicas(m, "ext") {
		checkSecretUpload(t, r, databaseURLFile, "@db.example.com:5432/notes?sslmode=require", "0440")
		checkSecretUpload(t, r, databaseURLFile, "postgres://notes_app:", "0440")
	}
	for _, r := range m.resources {
		for k, v := range r.Inputs {
			if containsClear(v, testDBPassword) || containsClear(v, testAppPassword) {
				t.Errorf("%s.%s holds a password in clear", r.Name, k)
			}
		}
	}
}

func TestProvidedTLS(t *testing.T) {
	cfg := stackConfig(t, "dev")
	cfg["notes:tls"] = "provided"
	cfg["notes:domain"] = "notes.test"
	cfg["notes:httpsPort"] = "8443"
	cfg["notes:tlsCert"] = "-----BEGIN CERTIFICATE-----\nCERT\n-----END CERTIFICATE-----\n"
	cfg["notes:tlsKey"] = "-----BEGIN PRIVATE KEY-----\nKEY-SECRET\n-----END PRIVATE KEY-----\n"
	m := mustDeploy(t, "tls", cfg)
	conf := m.named(t, "notes-tls-nginx-config")
	if !isSecret(prop(conf, "stdin")) {
		t.Error("nginx config stdin carries the TLS key but is not secret")
	}
	files := renderedFiles(t, conf)
	if !strings.Contains(files["tls/privkey.pem"], "KEY-SECRET") {
		t.Error("the TLS key is not installed")
	}
	if !strings.Contains(files["conf.d/notes.conf"], "ssl_certificate "+nginxTLSCert) {
		t.Error("nginx does not use the installed certificate")
	}
	for _, r := range m.resources {
		for k, v := range r.Inputs {
			if containsClear(v, "KEY-SECRET") {
				t.Errorf("%s.%s holds the TLS key in clear", r.Name, k)
			}
		}
	}
}

func TestInvalidConfig(t *testing.T) {
	cases := []struct {
		name string
		set  map[string]string
		del  []string
		key  string
	}{
		{"zero replicas", map[string]string{"notes:replicas": "0"}, nil, "notes:replicas"},
		{"replicas not a number", map[string]string{"notes:replicas": "two"}, nil, "notes:replicas"},
		{"unknown tls mode", map[string]string{"notes:tls": "maybe"}, nil, "notes:tls"},
		{"bad docker host", map[string]string{"notes:dockerHost": "http://host:2375"}, nil, "notes:dockerHost"},
		{"tls without domain", map[string]string{"notes:tls": "provided", "notes:tlsCert": "c", "notes:tlsKey": "k"}, nil, "notes:domain"},
		{"provided tls without cert", map[string]string{"notes:tls": "provided", "notes:domain": "a.example.com", "notes:tlsKey": "k"}, nil, "notes:tlsCert"},
		{"acme without email", map[string]string{"notes:tls": "acme", "notes:domain": "a.example.com", "notes:httpPort": "80"}, nil, "notes:acmeEmail"},
		{"no db password", nil, []string{"notes:dbPassword"}, "notes:dbPassword"},
		{"no app password", nil, []string{"notes:appDbPassword"}, "notes:appDbPassword"},
		{"no api token", nil, []string{"notes:apiToken"}, "notes:apiToken"},
		{"no api token, POST protected too", map[string]string{"notes:writeAuth": "all"}, []string{"notes:apiToken"}, "notes:apiToken"},
		{"unknown writeAuth", map[string]string{"notes:writeAuth": "some"}, nil, "notes:writeAuth"},
		{"postgres image without a major", map[string]string{"notes:postgresImage": "postgres:latest"}, nil, "notes:postgresImage"},
		{"tcp without TLS", map[string]string{"notes:dockerHost": "tcp://10.0.0.5:2375"}, nil, "notes:dockerHost"},
		{"tcp by name without TLS", map[string]string{"notes:dockerHost": "tcp://docker.example.com:2375"}, nil, "notes:dockerHost"},
		{"part of the TLS material", map[string]string{"notes:dockerHost": "tcp://10.0.0.5:2376", "notes:dockerTlsCa": "CA"}, nil, "notes:dockerTlsKey"},
		{"TLS material for a socket", map[string]string{"notes:dockerTlsCa": "CA", "notes:dockerTlsCert": "C", "notes:dockerTlsKey": "K"}, nil, "notes:dockerTlsCa"},
		{"db port on all addresses", map[string]string{"notes:bindAddress": "0.0.0.0"}, nil, "notes:dbPort"},
		{"bootstrap without ssh", map[string]string{"notes:bootstrap": "true"}, nil, "notes:bootstrap"},
		{"bad duration", map[string]string{"notes:drainDelay": "5 seconds"}, nil, "notes:drainDelay"},
		{"start timeout below the start period", map[string]string{"notes:startTimeout": "5s"}, nil, "notes:startTimeout"},
		{"start timeout too long", map[string]string{"notes:startTimeout": "2h"}, nil, "notes:startTimeout"},
		{"bad bool", map[string]string{"notes:backups": "yes please"}, nil, "notes:backups"},
		{"bad port", map[string]string{"notes:httpPort": "70000"}, nil, "notes:httpPort"},
		{"bad bind address", map[string]string{"notes:bindAddress": "localhost"}, nil, "notes:bindAddress"},
		{"backup retention", map[string]string{"notes:backupRetention": "0"}, nil, "notes:backupRetention"},
		{"log level", map[string]string{"notes:logLevel": "loud"}, nil, "notes:logLevel"},
		{"ssh with password", map[string]string{"notes:dockerHost": "ssh://u:pw@h"}, nil, "notes:dockerHost"},
		{"cpus", map[string]string{"notes:serviceCpus": "lots"}, nil, "notes:serviceCpus"},
		{"sshOpts not a list", map[string]string{"notes:dockerHost": "ssh://u@h", "notes:sshOpts": "-i key"}, nil, "notes:sshOpts"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := stackConfig(t, "dev")
			for k, v := range tc.set {
				cfg[k] = v
			}
			for _, k := range tc.del {
				delete(cfg, k)
			}
			m := &mocks{}
			err := deploy(t, "dev", cfg, m)
			if err == nil {
				t.Fatalf("deploy succeeded, want an error naming %s", tc.key)
			}
			if !strings.Contains(err.Error(), tc.key) {
				t.Errorf("error %q does not name %s", err, tc.key)
			}
			if len(m.resources) != 0 {
				t.Errorf("%d resources registered before the config error", len(m.resources))
			}
		})
	}
}

// The placeholder's key is random (nothing public derives it) and kept by a command whose later
// stdin is ignored; the certificate is the same bytes for the same key, so an unchanged up shows
// no diff.
func TestPlaceholderCert(t *testing.T) {
	cfg := stackConfig(t, "prod")
	keys := map[string]bool{}
	for range 2 {
		m := mustDeploy(t, "prod", cfg)
		k := m.named(t, "notes-prod-nginx-placeholder-key")
		if str(prop(k, "create")) != "cat" || !isSecret(prop(k, "stdin")) {
			t.Fatalf("placeholder key command: create %q, stdin secret %v", str(prop(k, "create")), isSecret(prop(k, "stdin")))
		}
		keys[str(prop(k, "stdin"))] = true
		conf := m.named(t, "notes-prod-nginx-config")
		if !isSecret(prop(conf, "stdin")) {
			t.Error("the nginx config stdin holds the placeholder key but is not secret")
		}
		files := untarB64(t, str(prop(conf, "stdin")))
		if _, ok := files[placeholderDir+"/privkey.pem"]; !ok {
			t.Fatalf("nginx config stdin lacks the placeholder key; has %v", files)
		}
	}
	if len(keys) != 2 {
		t.Error("two runs generated the same placeholder key: it is not random")
	}
	for k := range keys {
		c1, err := placeholderCert("notes.example.com", k)
		if err != nil {
			t.Fatal(err)
		}
		c2, _ := placeholderCert("notes.example.com", k)
		if string(c1) != string(c2) {
			t.Error("placeholder certificate changes between runs with the same key (would cause a diff on every up)")
		}
	}
	if _, err := placeholderCert("notes.example.com", "not a key"); err == nil {
		t.Error("placeholderCert accepted a key that is not PEM")
	}
}

// certbot asks the configured ACME directory and trusts the private CA from a file.
func TestCertbotACMEServer(t *testing.T) {
	ca, _, err := nginx.SelfSignedCertificate([]string{"ca.internal"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		set    map[string]string
		server string
	}{
		{"production", nil, letsEncryptProduction},
		{"staging", map[string]string{"notes:acmeStaging": "true"}, letsEncryptStaging},
		{"private CA", map[string]string{"notes:acmeServer": "https://ca.internal/acme/directory", "notes:acmeCaBundle": string(ca)}, "https://ca.internal/acme/directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := stackConfig(t, "prod")
			maps.Copy(cfg, tc.set)
			m := mustDeploy(t, "prod", cfg)
			cb := m.named(t, "notes-prod-nginx-certbot")
			args := strings.Join(strs(prop(cb, "entrypoints")), " ")
			if !strings.Contains(args, "--server "+tc.server+" ") || strings.Contains(args, "--staging") {
				t.Errorf("certbot arguments %q, want --server %s", args, tc.server)
			}
			envs := strings.Join(strs(prop(cb, "envs")), " ")
			// No uploads: certbot's root filesystem is read-only.
			if _, private := tc.set["notes:acmeCaBundle"]; private != strings.Contains(envs, "REQUESTS_CA_BUNDLE="+certbotCABundleTmp) ||
				private != strings.Contains(envs, "NOTES_ACME_CA_BUNDLE="+strings.TrimSpace(tc.set["notes:acmeCaBundle"])) || prop(cb, "uploads").IsArray() {
				t.Errorf("private CA %v: envs %q, uploads %v", private, envs, prop(cb, "uploads"))
			}
			if nets := fmt.Sprint(prop(cb, "networksAdvanced")); !strings.Contains(nets, "name") {
				t.Errorf("certbot is not on the stack network (a private CA there is out of reach): %s", nets)
			}
			if hc := strs(obj(prop(cb, "healthcheck"))["tests"]); !slices.Equal(hc, certbotHealthTest) {
				t.Errorf("certbot healthcheck %v", hc)
			}
			smoke := str(prop(m.named(t, "notes-prod-smoke-check"), "create"))
			if strings.Contains(smoke, "--insecure") {
				t.Errorf("smoke check skips verification: %.300s", smoke)
			}
			trust := str(obj(prop(m.named(t, "notes-prod-smoke-check"), "environment"))[smokeTrustEnv])
			if !strings.Contains(trust, "BEGIN CERTIFICATE") || !strings.Contains(trust, strings.TrimSpace(tc.set["notes:acmeCaBundle"])) {
				t.Errorf("smoke check trusts %q, want the placeholder (and the private CA)", trust)
			}
		})
	}
}

// An app deploy (a new appVersion, so a new revision and new replica names) leaves the nginx
// configuration command exactly as it was: no new configuration, no reload.
func TestAppDeployKeepsTheNginxConfig(t *testing.T) {
	deployed := func(version, revision string) *mocks {
		cfg := stackConfig(t, "dev")
		cfg["notes:appVersion"] = version
		m := &mocks{revision: revision}
		if err := deploy(t, "dev", cfg, m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	before, after := deployed("v1", "0a1b2c3d"), deployed("v2", "deadbeef")
	if b, a := str(prop(replicas(before, "dev")[0], "name")), str(prop(replicas(after, "dev")[0], "name")); b == a {
		t.Fatalf("replica name %s did not change with the revision", b)
	}
	confBefore, confAfter := before.named(t, "notes-dev-nginx-config"), after.named(t, "notes-dev-nginx-config")
	for _, k := range []string{"create", "stdin", "triggers", "environment"} {
		if !prop(confBefore, k).DeepEquals(prop(confAfter, k)) {
			t.Errorf("nginx config %s changed with the app deploy", k)
		}
	}
}

// TestWriteAuthWiring: the replicas' WRITE_AUTH and API_TOKENS_FILE for each notes:writeAuth, on
// both engines, and a token the service would refuse fails the deploy naming the key.
func TestWriteAuthWiring(t *testing.T) {
	for _, engine := range []string{"containers", "swarm"} {
		for _, tc := range []struct {
			writeAuth string
			token     bool
		}{{"", true}, {"all", true}, {"none", false}} {
			t.Run(engine+"/"+tc.writeAuth, func(t *testing.T) {
				cfg := stackConfig(t, "dev")
				cfg["notes:engine"] = engine
				if engine == "swarm" {
					cfg["notes:bindAddress"] = "0.0.0.0"
					delete(cfg, "notes:dbPort")
				}
				if tc.writeAuth != "" {
					cfg["notes:writeAuth"] = tc.writeAuth
				}
				if !tc.token {
					delete(cfg, "notes:apiToken")
				}
				m := mustDeploy(t, "dev", cfg)
				want := tc.writeAuth
				if want == "" {
					want = "modify"
				}
				env := appEnv(t, m, engine)
				if env["WRITE_AUTH"] != want || (env["API_TOKENS_FILE"] == apiTokensFile) != tc.token {
					t.Errorf("replica env %v, want WRITE_AUTH=%s and a token file: %v", env, want, tc.token)
				}
				if env["TRUSTED_PROXIES"] != testSubnet {
					t.Errorf("TRUSTED_PROXIES = %q, want the stack network's subnet %s", env["TRUSTED_PROXIES"], testSubnet)
				}
				if engine == "containers" {
					// nginx limits the attempts of exactly the methods that need the token.
					conf := renderedFiles(t, m.named(t, "notes-dev-nginx-config"))["nginx.conf"]
					limited := strings.Contains(conf, "zone=notes_auth")
					postLimited := strings.Contains(conf, "POST $binary_remote_addr;\n        PATCH $binary_remote_addr;\n        DELETE $binary_remote_addr;\n    }\n    limit_req_zone $notes_auth_key")
					if limited != tc.token || postLimited != (want == "all") {
						t.Errorf("writeAuth %s: nginx limits token attempts %v (POST too: %v):\n%s", want, limited, postLimited, conf)
					}
				}
			})
		}
	}
	cfg := stackConfig(t, "dev")
	cfg["notes:apiToken"] = "short"
	if err := deploy(t, "dev", cfg, &mocks{}); err == nil || !strings.Contains(err.Error(), "notes:apiToken") {
		t.Errorf("a 5-character token: err = %v, want one naming notes:apiToken", err)
	}
}

// appEnv is the environment of the app's replicas (engine containers) or service (swarm).
func appEnv(t *testing.T, m *mocks, engine string) map[string]string {
	t.Helper()
	env := map[string]string{}
	if engine == "swarm" {
		for _, s := range m.byType(serviceT) {
			if s.Name == "notes-dev-app" {
				for k, v := range obj(unsecret(containerSpec(s)["env"])) {
					env[string(k)] = str(v)
				}
			}
		}
		return env
	}
	for _, r := range m.byType(containerT) {
		if strings.HasPrefix(r.Name, "notes-dev-app-") {
			for _, e := range strs(prop(r, "envs")) {
				k, v, _ := strings.Cut(e, "=")
				env[k] = v
			}
			return env
		}
	}
	t.Fatal("no replica")
	return nil
}

// TestDockerTLS: a tcp:// daemon on another machine needs TLS material, all of it secret; the
// provider and the program's commands get it, no input holds it in clear. Loopback needs none.
func TestDockerTLS(t *testing.T) {
	tlsCfg := func() map[string]string {
		cfg := stackConfig(t, "dev")
		cfg["notes:dockerHost"] = "tcp://docker.example.com:2376"
		cfg["notes:dockerTlsCa"], cfg["notes:dockerTlsCert"], cfg["notes:dockerTlsKey"] = "CA-PEM", "CERT-PEM", "KEY-SECRET-PEM"
		delete(cfg, "notes:dbPort") // published on the remote host's loopback: fine, but not needed
		return cfg
	}
	m := mustDeploy(t, "dev", tlsCfg())
	provs := m.byType(providerT)
	if len(provs) != 1 {
		t.Fatalf("%d providers", len(provs))
	}
	for k, want := range map[string]string{"caMaterial": "CA-PEM", "certMaterial": "CERT-PEM", "keyMaterial": "KEY-SECRET-PEM"} {
		if v := prop(provs[0], k); !isSecret(v) || str(v) != want {
			t.Errorf("provider %s = %v, want the secret %q", k, v, want)
		}
	}
	var commands int
	for _, r := range m.resources {
		for k, v := range r.Inputs {
			if containsClear(v, "KEY-SECRET-PEM") {
				t.Errorf("%s %s.%s holds the TLS key in clear", r.Type, r.Name, k)
			}
		}
		if r.Type == commandT && strings.Contains(str(prop(r, "create")), "DOCKER_TLS_VERIFY=1") {
			commands++
		}
	}
	if commands == 0 {
		t.Error("no command on the host uses TLS")
	}

	// The material must be secret in the stack's config, not a plain value.
	plain := tlsCfg()
	err := pulumi.RunErr(func(ctx *pulumi.Context) error {
		_, err := LoadConfig(ctx)
		return err
	}, pulumi.WithMocks("notes", "dev", &mocks{}), func(info *pulumi.RunInfo) {
		info.Config = plain
		info.ConfigSecretKeys = []string{"notes:dbPassword", "notes:appDbPassword", "notes:apiToken", "notes:dockerTlsCa", "notes:dockerTlsCert"}
	})
	if err == nil || !strings.Contains(err.Error(), "notes:dockerTlsKey") || !strings.Contains(err.Error(), "secret") {
		t.Errorf("a TLS key in clear: err = %v, want one naming notes:dockerTlsKey", err)
	}

	// A loopback tcp:// daemon may go without TLS.
	for _, h := range []string{"tcp://127.0.0.1:2375", "tcp://localhost:2375", "tcp://[::1]:2375"} {
		cfg := stackConfig(t, "dev")
		cfg["notes:dockerHost"] = h
		if err := deploy(t, "dev", cfg, &mocks{}); err != nil {
			t.Errorf("%s: %v", h, err)
		}
	}
}
