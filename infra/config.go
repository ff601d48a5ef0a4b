package main

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/notes-stack/notes/nginx"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/config"
)

// AppRole is the least-privilege Postgres role the replicas connect as. `notes migrate up`
// creates it (APP_DB_ROLE/APP_DB_PASSWORD) with DML rights on the application's tables only.
const AppRole = "notes_app"

// Config is the whole stack configuration (Pulumi config namespace `notes:`), loaded and
// validated once by LoadConfig. Secret values stay pulumi.StringOutput so they are never
// exposed as plain strings in the program.
type Config struct {
	Project string
	Stack   string

	// Docker host and SSH.
	DockerHost DockerHost // parsed notes:dockerHost
	SSHOpts    []string   // extra ssh arguments (provider SshOpts and our own ssh commands)
	Bootstrap  bool       // install Docker over SSH before anything else (ssh:// only)
	DockerTLS  DockerTLS  // client TLS for a tcp:// daemon

	// Service.
	Replicas        int
	AppVersion      string
	ImageName       string
	PushRegistry    string
	GoImage         string
	ServiceMemoryMB int
	// DBMemoryMB is the Postgres container's or task's memory limit (notes:dbMemory).
	DBMemoryMB      int
	ServiceCPUs     string
	LogLevel        string
	DrainDelay      time.Duration
	ShutdownTimeout time.Duration
	// StartTimeout bounds how long `pulumi up` waits for a new replica to turn healthy before
	// it refuses the version (engine containers: the provider's wait; engine swarm: the base of
	// the update's converge wait).
	StartTimeout time.Duration
	// WriteAuth is notes:writeAuth, the service's WRITE_AUTH: modify (PATCH and DELETE need
	// the API token), all (POST too) or none. APIToken (notes:apiToken, secret) is the token,
	// delivered to the replicas as their API_TOKENS_FILE; unset with writeAuth none.
	WriteAuth string
	APIToken  pulumi.StringOutput

	// Proxy.
	NginxImage   string
	RateLimit    int // writes per minute per client address (nginx limit_req); 0 = off
	BindAddress  string
	HTTPPort     int
	HTTPSPort    int
	TLS          nginx.TLSMode
	Domain       string
	ACMEEmail    string
	ACMEStaging  bool
	ACMEServer   string // ACME directory URL as configured; ACMEDirectory resolves the default
	ACMECABundle string // PEM certificates certbot trusts for the ACME server (REQUESTS_CA_BUNDLE)
	CertbotImage string
	TLSCert      pulumi.StringOutput // secret, provided mode
	TLSKey       pulumi.StringOutput // secret, provided mode

	// Database.
	PostgresImage  string
	DBPort         int
	DBPassword     pulumi.StringOutput // secret; owner (superuser) of the container database
	AppDBPassword  pulumi.StringOutput // secret; password of AppRole
	DatabaseURL    pulumi.StringOutput // secret; external database (owner URL), when ExternalDB
	ExternalDB     bool
	DBName         string
	DBOwner        string
	BackupsEnabled bool
	BackupInterval time.Duration
	BackupKeep     int
	BackupVerify   bool // restore every new dump into a scratch database and compare row counts
	// DBPoolSize is each replica's pool maximum (DB_MAX_CONNS); DBMaxConnections is Postgres's
	// max_connections (passed to the container database; an external one's own value).
	DBPoolSize       int
	DBMaxConnections int
	// DBHealthInterval is how often Docker runs the database's health check. On engine swarm
	// the replicas find a restarted Postgres only once it is healthy (Swarm's DNS): the
	// interval bounds recovery after an outage, and each check (an exec) costs CPU.
	DBHealthInterval time.Duration
	// VolumeDriverOpts are the local driver options of a data volume by role (pgdata:
	// notes:dbVolumeDriverOpts, backups: notes:backupVolumeDriverOpts); a role without any gets a
	// plain volume.
	VolumeDriverOpts map[string]map[string]string

	// Lifecycle.
	Protect    bool
	SmokeCheck bool

	// Engine is how the stack's resources are declared (notes:engine): plain containers on one
	// host, or Swarm services.
	Engine Engine

	// Nodes of a swarm beyond the manager (engine swarm).
	Workers            []Worker // notes:workers
	ManagerLabels      []string // notes:managerLabels; nil: the roles no worker has
	MaxReplicasPerNode int      // app tasks per node; 0: no limit
	// The stack's own registry on the manager (OwnRegistry): its published port, image, and
	// whether it speaks plain HTTP (the nodes' daemons list it in --insecure-registry) instead
	// of TLS with the stack's own CA.
	RegistryPort     int
	RegistryImage    string
	RegistryInsecure bool
}

// The values of notes:writeAuth (the service's WRITE_AUTH).
const (
	WriteAuthModify = "modify"
	WriteAuthAll    = "all"
	WriteAuthNone   = "none"
)

// ConfigError names the offending config key.
type ConfigError struct {
	Key string
	Msg string
}

func (e *ConfigError) Error() string { return fmt.Sprintf("config notes:%s: %s", e.Key, e.Msg) }

func keyErr(key, format string, args ...any) error {
	return &ConfigError{Key: key, Msg: fmt.Sprintf(format, args...)}
}

// Defaults (kept in sync with Pulumi.yaml, which documents them for the CLI).
const (
	defaultDockerHost    = "unix:///var/run/docker.sock"
	defaultPostgresImage = "postgres:17"
	defaultNginxImage    = "nginx:1.27"
	defaultGoImage       = "golang:1.26"
	defaultCertbotImage  = "certbot/certbot:v3.0.1"
	defaultRegistryImage = "registry:2"

	// Let's Encrypt's ACME directories: production is the default of notes:acmeServer,
	// staging is what notes:acmeStaging selects.
	letsEncryptProduction = "https://acme-v02.api.letsencrypt.org/directory"
	letsEncryptStaging    = "https://acme-staging-v02.api.letsencrypt.org/directory"
)

var (
	imageRefRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._/:@-]*$`)
	versionRE  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$`)
	cpusRE     = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?$`)
)

// LoadConfig reads the `notes:` config of the current stack and validates it. Every error names
// the key it is about.
func LoadConfig(ctx *pulumi.Context) (*Config, error) {
	c := config.New(ctx, "")
	r := &reader{c: c}
	cfg := &Config{
		Project: ctx.Project(),
		Stack:   ctx.Stack(),

		DockerHost: r.dockerHost("dockerHost", defaultDockerHost),
		Bootstrap:  r.boolean("bootstrap", false),

		Replicas:        r.integer("replicas", 1),
		AppVersion:      r.str("appVersion", "dev"),
		ImageName:       r.str("imageName", "notes-service"),
		PushRegistry:    r.str("pushRegistry", ""),
		GoImage:         r.str("goImage", defaultGoImage),
		ServiceMemoryMB: r.integer("serviceMemory", 256),
		DBMemoryMB:      r.integer("dbMemory", 1024),
		ServiceCPUs:     r.str("serviceCpus", "1"),
		LogLevel:        r.str("logLevel", "info"),
		DrainDelay:      r.duration("drainDelay", 5*time.Second),
		ShutdownTimeout: r.duration("shutdownTimeout", 15*time.Second),
		StartTimeout:    r.duration("startTimeout", 2*time.Minute),
		WriteAuth:       r.str("writeAuth", WriteAuthModify),

		NginxImage:   r.str("nginxImage", defaultNginxImage),
		RateLimit:    r.integer("rateLimit", 600),
		BindAddress:  r.str("bindAddress", "0.0.0.0"),
		HTTPPort:     r.integer("httpPort", 80),
		HTTPSPort:    r.integer("httpsPort", 443),
		TLS:          r.tlsMode("tls", nginx.TLSOff),
		Domain:       r.str("domain", ""),
		ACMEEmail:    r.str("acmeEmail", ""),
		ACMEStaging:  r.boolean("acmeStaging", false),
		ACMEServer:   r.str("acmeServer", ""),
		ACMECABundle: r.str("acmeCaBundle", ""),
		CertbotImage: r.str("certbotImage", defaultCertbotImage),

		PostgresImage:  r.str("postgresImage", defaultPostgresImage),
		DBPort:         r.integer("dbPort", 0),
		DBName:         r.str("dbName", "notes"),
		DBOwner:        r.str("dbOwner", "notes"),
		BackupsEnabled: r.boolean("backups", false),
		BackupInterval: r.duration("backupInterval", 24*time.Hour),
		BackupKeep:     r.integer("backupRetention", 7),
		BackupVerify:   r.boolean("backupVerify", true),

		DBPoolSize:       r.integer("dbPoolSize", 4),
		DBMaxConnections: r.integer("dbMaxConnections", 100),
		DBHealthInterval: r.duration("dbHealthInterval", 5*time.Second),

		Protect:    r.boolean("protect", false),
		SmokeCheck: r.boolean("smokeCheck", true),

		Engine: Engine(r.str("engine", string(EngineContainers))),

		MaxReplicasPerNode: r.integer("maxReplicasPerNode", 0),
		RegistryPort:       r.integer("registryPort", 5443),
		RegistryImage:      r.str("registryImage", defaultRegistryImage),
		RegistryInsecure:   r.boolean("registryInsecure", false),
	}
	if err := c.TryObject("sshOpts", &cfg.SSHOpts); err != nil && !errors.Is(err, config.ErrMissingVar) {
		r.errs = append(r.errs, keyErr("sshOpts", "must be a list of strings: %v", err))
	}
	var workers []rawWorker
	if err := c.TryObject("workers", &workers); err != nil && !errors.Is(err, config.ErrMissingVar) {
		r.errs = append(r.errs, keyErr("workers", "must be a list of {host: ssh://user@host[:port], labels: [db, edge]}: %v", err))
	}
	var errs []error
	cfg.Workers, errs = parseWorkers(workers)
	r.errs = append(r.errs, errs...)
	if err := c.TryObject("managerLabels", &cfg.ManagerLabels); err != nil && !errors.Is(err, config.ErrMissingVar) {
		r.errs = append(r.errs, keyErr("managerLabels", "must be a list of node labels (db, edge): %v", err))
	}
	var volErrs []error
	cfg.VolumeDriverOpts, volErrs = readVolumeDriverOpts(c)
	r.errs = append(r.errs, volErrs...)
	if r.err() != nil {
		return nil, r.err()
	}

	// Secrets: TrySecret tells us whether they are set without exposing them.
	if v, err := c.TrySecret("databaseUrl"); err == nil {
		cfg.DatabaseURL, cfg.ExternalDB = v, true
	}
	if v, err := c.TrySecret("dbPassword"); err == nil {
		cfg.DBPassword = v
	} else if !cfg.ExternalDB {
		r.errs = append(r.errs, keyErr("dbPassword", "required (set it with `pulumi config set --secret dbPassword ...`) unless notes:databaseUrl is set"))
	}
	if v, err := c.TrySecret("appDbPassword"); err == nil {
		cfg.AppDBPassword = v
	} else {
		r.errs = append(r.errs, keyErr("appDbPassword", "required: password of the least-privilege role %s the replicas use (`pulumi config set --secret appDbPassword ...`)", AppRole))
	}
	if v, err := c.TrySecret("apiToken"); err == nil {
		if cfg.WriteAuth != WriteAuthNone {
			cfg.APIToken = v
		}
	} else if cfg.WriteAuth != WriteAuthNone {
		r.errs = append(r.errs, keyErr("apiToken", "required unless notes:writeAuth is none: the bearer token for PATCH and DELETE (`make secret KEY=notes:apiToken`; make up generates one for a new stack), at least 16 characters"))
	}
	cfg.DockerTLS = readDockerTLS(ctx, c, r)
	if cfg.TLS == nginx.TLSProvided {
		if v, err := c.TrySecret("tlsCert"); err == nil {
			cfg.TLSCert = v
		} else {
			r.errs = append(r.errs, keyErr("tlsCert", "required with tls=provided (PEM certificate chain, `pulumi config set --secret tlsCert < fullchain.pem`)"))
		}
		if v, err := c.TrySecret("tlsKey"); err == nil {
			cfg.TLSKey = v
		} else {
			r.errs = append(r.errs, keyErr("tlsKey", "required with tls=provided (PEM private key, `pulumi config set --secret tlsKey < privkey.pem`)"))
		}
	}
	if r.err() != nil {
		return nil, r.err()
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.WriteAuth == WriteAuthNone {
		// An explicit opt-out, but one to see on every preview and up.
		_ = ctx.Log.Warn("notes:writeAuth is none: anyone who reaches nginx can change and delete notes (PATCH and DELETE need no token)", nil)
	}
	return cfg, nil
}

// Validate checks the plain (non-secret) settings. It returns all problems at once.
func (c *Config) Validate() error {
	var errs []error
	add := func(key, format string, args ...any) { errs = append(errs, keyErr(key, format, args...)) }

	if c.DockerHost.Kind == 0 {
		add("dockerHost", "not set (unix:///path, tcp://host:port or ssh://user@host[:port])")
	}
	if c.Bootstrap && !c.DockerHost.IsSSH() {
		add("bootstrap", "only valid with an ssh:// dockerHost (it installs Docker over SSH)")
	}
	switch {
	case c.DockerHost.Kind == TCPHost && !c.DockerTLS.Set && !c.DockerHost.IsLoopback():
		add("dockerHost", "%s without TLS is refused: whoever reaches the port controls the Docker daemon (root on the host); set notes:dockerTlsCa, dockerTlsCert and dockerTlsKey (secrets, PEM), or use ssh://", c.DockerHost)
	case c.DockerTLS.Set && c.DockerHost.Kind != TCPHost:
		add("dockerTlsCa", "TLS client certificates are only used with a tcp:// dockerHost")
	}
	if len(c.SSHOpts) > 0 && !c.DockerHost.IsSSH() && !c.Clustered() {
		add("sshOpts", "only used with an ssh:// dockerHost or notes:workers")
	}
	if c.Replicas < 1 || c.Replicas > 20 {
		add("replicas", "must be between 1 and 20, got %d", c.Replicas)
	}
	if !versionRE.MatchString(c.AppVersion) {
		add("appVersion", "%q must be 1-128 characters of [A-Za-z0-9._+-] (it is an image tag)", c.AppVersion)
	}
	if !regexp.MustCompile(`^[a-z0-9]+([._/-][a-z0-9]+)*$`).MatchString(c.ImageName) {
		add("imageName", "%q is not a valid image repository name (lower case, no tag)", c.ImageName)
	}
	if c.PushRegistry != "" && strings.Contains(c.PushRegistry, "://") {
		add("pushRegistry", "%q must be a registry host[:port][/namespace], without a scheme", c.PushRegistry)
	}
	for key, img := range map[string]string{"goImage": c.GoImage, "nginxImage": c.NginxImage, "postgresImage": c.PostgresImage, "certbotImage": c.CertbotImage} {
		if !imageRefRE.MatchString(img) {
			add(key, "%q is not a valid image reference", img)
		}
	}
	if c.ServiceMemoryMB < 32 {
		add("serviceMemory", "must be at least 32 (MiB), got %d", c.ServiceMemoryMB)
	}
	if c.DBMemoryMB < 256 {
		add("dbMemory", "must be at least 256 (MiB; Postgres's shared memory is 256), got %d", c.DBMemoryMB)
	}
	if !cpusRE.MatchString(c.ServiceCPUs) {
		add("serviceCpus", "%q must be a number of CPUs such as 0.5 or 1", c.ServiceCPUs)
	} else if f, _ := strconv.ParseFloat(c.ServiceCPUs, 64); f <= 0 {
		add("serviceCpus", "must be greater than 0")
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		add("logLevel", "%q must be debug, info, warn or error", c.LogLevel)
	}
	if c.DrainDelay < 0 || c.DrainDelay > 5*time.Minute {
		add("drainDelay", "must be between 0s and 5m, got %s", c.DrainDelay)
	}
	if c.ShutdownTimeout <= 0 || c.ShutdownTimeout > 10*time.Minute {
		add("shutdownTimeout", "must be between 1s and 10m, got %s", c.ShutdownTimeout)
	}
	// Under 15 s a healthy replica could miss it: its healthcheck's start period is 10 s.
	if c.StartTimeout < 15*time.Second || c.StartTimeout > 30*time.Minute {
		add("startTimeout", "must be between 15s and 30m, got %s", c.StartTimeout)
	}

	switch c.WriteAuth {
	case WriteAuthModify, WriteAuthAll, WriteAuthNone:
	default:
		add("writeAuth", "%q must be modify (PATCH and DELETE need notes:apiToken), all (POST too) or none", c.WriteAuth)
	}
	if c.RateLimit < 0 {
		add("rateLimit", "must be 0 (off) or a number of writes per minute, got %d", c.RateLimit)
	}
	if ip := net.ParseIP(c.BindAddress); ip == nil {
		add("bindAddress", "%q must be an IP address such as 127.0.0.1 or 0.0.0.0", c.BindAddress)
	}
	checkPort := func(key string, p int) {
		if p < 1 || p > 65535 {
			add(key, "must be a TCP port between 1 and 65535, got %d", p)
		}
	}
	checkPort("httpPort", c.HTTPPort)
	switch c.TLS {
	case nginx.TLSOff:
	case nginx.TLSProvided, nginx.TLSACME:
		checkPort("httpsPort", c.HTTPSPort)
		if c.HTTPSPort == c.HTTPPort {
			add("httpsPort", "must differ from httpPort (%d)", c.HTTPPort)
		}
		if c.Domain == "" {
			add("domain", "required with tls=%s", c.TLS)
		}
	default:
		add("tls", "%q must be off, provided or acme", c.TLS)
	}
	if c.Domain != "" && !validDNSName(c.Domain, 2) {
		add("domain", "%q is not a DNS name (labels of [A-Za-z0-9-] not starting or ending with '-', at least two labels, 253 characters at most)", c.Domain)
	}
	if c.TLS == nginx.TLSACME {
		if c.ACMEEmail == "" {
			add("acmeEmail", "a contact e-mail address is required with tls=acme")
		} else if err := validACMEEmail(c.ACMEEmail); err != nil {
			add("acmeEmail", "%v", err)
		}
		if c.ACMEStaging && c.ACMEServer != "" {
			add("acmeStaging", "cannot be combined with acmeServer (acmeStaging means acmeServer %s): remove one of them", letsEncryptStaging)
		}
		if c.ACMEServer != "" {
			if err := validACMEServer(c.ACMEServer); err != nil {
				add("acmeServer", "%v", err)
			}
		}
		if c.ACMECABundle != "" {
			if err := validCABundle(c.ACMECABundle); err != nil {
				add("acmeCaBundle", "%v", err)
			}
		}
	} else {
		for key, set := range map[string]bool{"acmeServer": c.ACMEServer != "", "acmeCaBundle": c.ACMECABundle != "", "acmeStaging": c.ACMEStaging} {
			if set {
				add(key, "only used with tls=acme (tls is %q); remove it", c.TLS)
			}
		}
	}

	if c.DBPort != 0 {
		checkPort("dbPort", c.DBPort)
		if c.ExternalDB {
			add("dbPort", "has no effect with notes:databaseUrl (no Postgres container); remove it")
		}
		if ip := net.ParseIP(c.BindAddress); ip == nil || !ip.IsLoopback() {
			add("dbPort", "Postgres may only be published on the loopback interface, but bindAddress is %q; use 0 (not published) and an SSH tunnel", c.BindAddress)
		}
		if c.DBPort == c.HTTPPort || (c.TLS != nginx.TLSOff && c.DBPort == c.HTTPSPort) {
			add("dbPort", "must differ from the nginx ports")
		}
	}
	if !c.ExternalDB {
		if _, err := postgresMajor(c.PostgresImage); err != nil {
			add("postgresImage", "%v", err)
		}
	}
	if !regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`).MatchString(c.DBName) {
		add("dbName", "%q must be a lower-case SQL identifier", c.DBName)
	}
	if !regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`).MatchString(c.DBOwner) || c.DBOwner == AppRole {
		add("dbOwner", "%q must be a lower-case SQL identifier other than %s", c.DBOwner, AppRole)
	}
	if c.DBHealthInterval < time.Second || c.DBHealthInterval > time.Minute || c.DBHealthInterval%time.Second != 0 {
		add("dbHealthInterval", "must be whole seconds from 1s to 1m, got %s", c.DBHealthInterval)
	}
	if c.BackupInterval < time.Minute {
		add("backupInterval", "must be at least 1m, got %s", c.BackupInterval)
	}
	if c.BackupKeep < 1 {
		add("backupRetention", "must keep at least 1 dump, got %d", c.BackupKeep)
	}
	if c.DBPoolSize < 1 || c.DBPoolSize > 1000 {
		add("dbPoolSize", "must be between 1 and 1000 connections per replica, got %d", c.DBPoolSize)
	}
	if c.DBMaxConnections < 20 || c.DBMaxConnections > 10000 {
		add("dbMaxConnections", "must be between 20 and 10000, got %d", c.DBMaxConnections)
	}
	if b := c.Connections(); b.Total > c.DBMaxConnections && c.DBPoolSize >= 1 && c.Replicas >= 1 {
		add("dbMaxConnections", "%d is too few for this stack: %s; lower notes:replicas or notes:dbPoolSize, or raise notes:dbMaxConnections", c.DBMaxConnections, b)
	}
	for role, o := range c.VolumeDriverOpts {
		key := volumeOptKeys[role]
		switch {
		case role == "pgdata" && c.ExternalDB:
			add(key, "has no effect with notes:databaseUrl (no Postgres container); remove it")
		case role == "backups" && !c.BackupsEnabled:
			add(key, "has no effect without notes:backups true; remove it")
		default:
			if err := validateVolumeDriverOpts(key, o); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for _, e := range append(c.validateEngine(), c.validateCluster()...) {
		add(e.Key, "%s", e.Msg)
	}
	return errors.Join(errs...)
}

// ACMEDirectory is the ACME directory certbot uses: notes:acmeServer, Let's Encrypt's staging
// CA with notes:acmeStaging, else Let's Encrypt production.
func (c *Config) ACMEDirectory() string {
	switch {
	case c.ACMEServer != "":
		return c.ACMEServer
	case c.ACMEStaging:
		return letsEncryptStaging
	}
	return letsEncryptProduction
}

// Warnings are settings that are valid but often a mistake; the program logs them as warnings of
// `pulumi up`.
func (c *Config) Warnings() []string {
	var w []string
	if c.TLS == nginx.TLSACME && c.HTTPPort != 80 {
		w = append(w, fmt.Sprintf("config notes:httpPort: %d with tls=acme: the ACME server validates the HTTP-01 challenge on port 80 of %s, so port 80 must forward to %d (a load balancer or NAT), or issuance fails", c.HTTPPort, c.Domain, c.HTTPPort))
	}
	return w
}

// Connections Postgres must accept beside the replicas (kept in step with what the stack runs).
const (
	migrateConns = 2 // `notes migrate up`: its pool maximum (service/migrate.go)
	// backupConns: pg_dump, and the scheduled test restore's pg_restore into its scratch database
	// (they never overlap, but an operator's `make backup` may meet the loop's dump).
	backupConns = 2
	adminConns  = 2 // `make psql`, an operator's pg_dump or psql
	// reservedConns is Postgres's superuser_reserved_connections (its default, 3): slots only
	// superusers may take, so the replicas' role never gets them.
	reservedConns = 3
)

// ConnectionBudget is what the stack asks of Postgres at its worst moment: a rollout.
type ConnectionBudget struct {
	Replicas, PoolSize, Rollout, Migrate, Backups, Admin, Reserved, Total int
}

func (b ConnectionBudget) String() string {
	s := fmt.Sprintf("a rollout runs old and new replicas at once, 2 x %d (notes:replicas) x %d (notes:dbPoolSize) = %d, + %d migrate",
		b.Replicas, b.PoolSize, b.Rollout, b.Migrate)
	if b.Backups > 0 {
		s += fmt.Sprintf(" + %d backups", b.Backups)
	}
	return s + fmt.Sprintf(" + %d admin + %d superuser-reserved = %d connections", b.Admin, b.Reserved, b.Total)
}

// Connections counts the connections the stack may open at once. A rollout runs the old and the
// new replicas side by side: on engine containers every new replica starts before any old one
// is retired; on engine swarm (start-first, one task at a time) fewer overlap, but an old task
// keeps its pool while it drains as the next new one starts, and a failed update rolls back the
// same way, so both engines count every replica twice.
func (c *Config) Connections() ConnectionBudget {
	b := ConnectionBudget{Replicas: c.Replicas, PoolSize: c.DBPoolSize, Rollout: 2 * c.Replicas * c.DBPoolSize,
		Migrate: migrateConns, Admin: adminConns, Reserved: reservedConns}
	if c.BackupsEnabled {
		b.Backups = backupConns
	}
	b.Total = b.Rollout + b.Migrate + b.Backups + b.Admin + b.Reserved
	return b
}

// DockerCPUs is serviceCpus as the docker provider reads it back ("1" is stored as "1.0"), so
// an unchanged value never shows a diff.
func (c *Config) DockerCPUs() string {
	f, err := strconv.ParseFloat(c.ServiceCPUs, 64)
	if err != nil {
		return c.ServiceCPUs
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.Contains(s, ".") {
		s += ".0"
	}
	return s
}

// DrainWait bounds a replica's drain, from SIGTERM to its "drained" line: the drain delay, the
// shutdown timeout and a margin.
func (c *Config) DrainWait() time.Duration {
	return c.DrainDelay + c.ShutdownTimeout + 5*time.Second
}

// Name returns the container/resource name notes-<stack>-<role>[-suffix...].
func (c *Config) Name(role string, suffix ...string) string {
	return objectName(c.Stack, role, suffix...)
}

// objectName is the one naming scheme of the stack's resources and Docker objects:
// notes-<stack>-<role>[-suffix...].
func objectName(stack, role string, suffix ...string) string {
	return strings.Join(append([]string{"notes", stack, role}, suffix...), "-")
}

// PublicHost is the host name clients use for the URLs.
func (c *Config) PublicHost() string {
	if c.Domain != "" {
		return c.Domain
	}
	if h, remote := c.DockerHost.RemoteHost(); remote {
		return h
	}
	if ip := net.ParseIP(c.BindAddress); ip != nil && !ip.IsUnspecified() {
		return c.BindAddress
	}
	return "127.0.0.1"
}

// BaseURL is the URL of the stack through nginx (https when TLS is on).
func (c *Config) BaseURL() string {
	host := c.PublicHost()
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if c.TLS != nginx.TLSOff {
		if c.HTTPSPort == 443 {
			return "https://" + host
		}
		return fmt.Sprintf("https://%s:%d", host, c.HTTPSPort)
	}
	if c.HTTPPort == 80 {
		return "http://" + host
	}
	return fmt.Sprintf("http://%s:%d", host, c.HTTPPort)
}

// validDNSName reports whether s is a DNS name of at least minLabels labels: labels of 1-63
// characters [A-Za-z0-9-] that neither start nor end with '-', 253 characters in all, no
// trailing dot.
func validDNSName(s string, minLabels int) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	labels := strings.Split(s, ".")
	if len(labels) < minLabels {
		return false
	}
	for _, l := range labels {
		if !dnsLabelRE.MatchString(l) {
			return false
		}
	}
	return true
}

var dnsLabelRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)

// validACMEEmail checks that s is a bare e-mail address (no display name, no angle brackets,
// exactly as net/mail reads it) whose domain is a DNS name with at least two labels.
func validACMEEmail(s string) error {
	a, err := mail.ParseAddress(s)
	if err != nil {
		return fmt.Errorf("%q is not an e-mail address: %v", s, err)
	}
	if a.Name != "" || a.Address != s {
		return fmt.Errorf("%q must be a bare address such as admin@example.com (no display name or <>)", s)
	}
	at := strings.LastIndex(s, "@")
	if !validDNSName(s[at+1:], 2) {
		return fmt.Errorf("%q: domain %q is not a DNS name", s, s[at+1:])
	}
	return nil
}

// validACMEServer checks that s is an https URL with a host and nothing that certbot's --server
// or a shell word could misread (no user info, fragment or whitespace).
func validACMEServer(s string) error {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return fmt.Errorf("%q is not a URL: %v", s, err)
	case u.Scheme != "https" || u.Host == "" || u.User != nil || u.Fragment != "" || strings.ContainsAny(s, " \t\n\r"):
		return fmt.Errorf("%q must be the https:// URL of an ACME directory, such as %s", s, letsEncryptStaging)
	}
	return nil
}

// validCABundle checks that s is one or more PEM certificates and nothing else.
func validCABundle(s string) error {
	rest := []byte(s)
	n := 0
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		n++
		if b.Type != "CERTIFICATE" {
			return fmt.Errorf("PEM block %d is a %q, want only CERTIFICATE blocks (the CA's certificates, never a key)", n, b.Type)
		}
		if _, err := x509.ParseCertificate(b.Bytes); err != nil {
			return fmt.Errorf("PEM block %d is not a certificate: %v", n, err)
		}
	}
	if n == 0 {
		return errors.New("holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return fmt.Errorf("has text after PEM certificate %d that is not PEM", n)
	}
	return nil
}

// reader collects parse errors that name the key.
type reader struct {
	c    *config.Config
	errs []error
}

func (r *reader) err() error { return errors.Join(r.errs...) }

func (r *reader) raw(key string) (string, bool) {
	v, err := r.c.Try(key)
	if err != nil {
		return "", false
	}
	return strings.TrimSpace(v), true
}

func (r *reader) str(key, def string) string {
	if v, ok := r.raw(key); ok && v != "" {
		return v
	}
	return def
}

// dockerHost parses the Docker host key once into its typed value.
func (r *reader) dockerHost(key, def string) DockerHost {
	h, err := ParseDockerHost(r.str(key, def))
	if err != nil {
		r.errs = append(r.errs, keyErr(key, "%v", err))
	}
	return h
}

// tlsMode reads the TLS mode into the nginx package's type.
func (r *reader) tlsMode(key string, def nginx.TLSMode) nginx.TLSMode {
	m, err := parseTLSMode(r.str(key, string(def)))
	if err != nil {
		r.errs = append(r.errs, keyErr(key, "%v", err))
		return def
	}
	return m
}

func parseTLSMode(s string) (nginx.TLSMode, error) {
	switch m := nginx.TLSMode(s); m {
	case nginx.TLSOff, nginx.TLSProvided, nginx.TLSACME:
		return m, nil
	}
	return "", fmt.Errorf("%q must be off, provided or acme", s)
}

func (r *reader) integer(key string, def int) int {
	v, ok := r.raw(key)
	if !ok || v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		r.errs = append(r.errs, keyErr(key, "%q is not an integer", v))
		return def
	}
	return n
}

func (r *reader) boolean(key string, def bool) bool {
	v, ok := r.raw(key)
	if !ok || v == "" {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		r.errs = append(r.errs, keyErr(key, "%q is not true or false", v))
		return def
	}
	return b
}

func (r *reader) duration(key string, def time.Duration) time.Duration {
	v, ok := r.raw(key)
	if !ok || v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		r.errs = append(r.errs, keyErr(key, "%q is not a duration such as 30s, 5m or 24h", v))
		return def
	}
	return d
}

// minAPITokenLen is the service's shortest API token (service/internal/config).
const minAPITokenLen = 16

// APITokensFile is the content of the replicas' API_TOKENS_FILE: the token on one line
// (secret). A token the service would refuse fails here, naming the key, not in a replica.
func (c *Config) APITokensFile() pulumi.StringOutput {
	return pulumi.ToSecret(c.APIToken.ApplyT(func(t string) (string, error) {
		if len(t) < minAPITokenLen || strings.ContainsFunc(t, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
			return "", keyErr("apiToken", "must be at least %d characters without spaces or control characters", minAPITokenLen)
		}
		return t + "\n", nil
	})).(pulumi.StringOutput)
}

// DockerTLS is the client side of a TLS-protected tcp:// Docker daemon (dockerd --tlsverify):
// the CA that signed the daemon's certificate, and this client's certificate and key, PEM, all
// Pulumi secrets. Set is false when none is configured.
type DockerTLS struct {
	CA, Cert, Key pulumi.StringOutput
	Set           bool
	// plain holds the same three values for the commands the program runs itself (the orphan
	// hook), which take no Pulumi inputs; unexported, so nothing prints or exports them.
	plain [3]string
}

// readDockerTLS reads notes:dockerTlsCa, dockerTlsCert and dockerTlsKey: all three or none,
// each as a secret (a key in clear in the stack file would be readable by anyone with the
// repository).
func readDockerTLS(ctx *pulumi.Context, c *config.Config, r *reader) DockerTLS {
	var t DockerTLS
	var missing []string
	for i, f := range []struct {
		key string
		dst *pulumi.StringOutput
	}{{"dockerTlsCa", &t.CA}, {"dockerTlsCert", &t.Cert}, {"dockerTlsKey", &t.Key}} {
		v, err := c.TrySecret(f.key)
		if err != nil {
			missing = append(missing, f.key)
			continue
		}
		t.plain[i], _ = c.Try(f.key)
		if !ctx.IsConfigSecret("notes:" + f.key) {
			r.errs = append(r.errs, keyErr(f.key, "must be a secret (`make secret KEY=notes:%s < file.pem`), not a plain value", f.key))
		}
		*f.dst = v
	}
	switch len(missing) {
	case 3:
		return DockerTLS{}
	case 0:
		t.Set = true
		return t
	}
	for _, k := range missing {
		r.errs = append(r.errs, keyErr(k, "required with the other notes:dockerTls* keys (PEM, `make secret KEY=notes:%s < file.pem`)", k))
	}
	return DockerTLS{}
}

// AuthMethods are the methods the replicas answer 401 without the API token (WRITE_AUTH), whose
// attempts nginx rate-limits per client address.
func (c *Config) AuthMethods() []string {
	switch c.WriteAuth {
	case WriteAuthAll:
		return []string{"POST", "PATCH", "DELETE"}
	case WriteAuthNone:
		return nil
	}
	return []string{"PATCH", "DELETE"}
}
