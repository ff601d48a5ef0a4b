package main

import (
	"errors"
	"fmt"
	"net"
	"net/mail"
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

	// Service.
	Replicas        int
	AppVersion      string
	ImageName       string
	PushRegistry    string
	GoImage         string
	ServiceMemoryMB int
	ServiceCPUs     string
	LogLevel        string
	DrainDelay      time.Duration
	ShutdownTimeout time.Duration

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
}

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
		ServiceCPUs:     r.str("serviceCpus", "1"),
		LogLevel:        r.str("logLevel", "info"),
		DrainDelay:      r.duration("drainDelay", 5*time.Second),
		ShutdownTimeout: r.duration("shutdownTimeout", 15*time.Second),

		NginxImage:   r.str("nginxImage", defaultNginxImage),
		RateLimit:    r.integer("rateLimit", 600),
		BindAddress:  r.str("bindAddress", "0.0.0.0"),
		HTTPPort:     r.integer("httpPort", 80),
		HTTPSPort:    r.integer("httpsPort", 443),
		TLS:          r.tlsMode("tls", nginx.TLSOff),
		Domain:       r.str("domain", ""),
		ACMEEmail:    r.str("acmeEmail", ""),
		ACMEStaging:  r.boolean("acmeStaging", false),
		CertbotImage: r.str("certbotImage", defaultCertbotImage),

		PostgresImage:  r.str("postgresImage", defaultPostgresImage),
		DBPort:         r.integer("dbPort", 0),
		DBName:         r.str("dbName", "notes"),
		DBOwner:        r.str("dbOwner", "notes"),
		BackupsEnabled: r.boolean("backups", false),
		BackupInterval: r.duration("backupInterval", 24*time.Hour),
		BackupKeep:     r.integer("backupRetention", 7),

		Protect:    r.boolean("protect", false),
		SmokeCheck: r.boolean("smokeCheck", true),

		Engine: Engine(r.str("engine", string(EngineContainers))),

		MaxReplicasPerNode: r.integer("maxReplicasPerNode", 0),
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
		if c.HTTPPort != 80 {
			add("httpPort", "must be 80 with tls=acme (the HTTP-01 challenge is served on port 80), got %d", c.HTTPPort)
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
	if !regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`).MatchString(c.DBName) {
		add("dbName", "%q must be a lower-case SQL identifier", c.DBName)
	}
	if !regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`).MatchString(c.DBOwner) || c.DBOwner == AppRole {
		add("dbOwner", "%q must be a lower-case SQL identifier other than %s", c.DBOwner, AppRole)
	}
	if c.BackupInterval < time.Minute {
		add("backupInterval", "must be at least 1m, got %s", c.BackupInterval)
	}
	if c.BackupKeep < 1 {
		add("backupRetention", "must keep at least 1 dump, got %d", c.BackupKeep)
	}
	for _, e := range append(c.validateEngine(), c.validateCluster()...) {
		add(e.Key, "%s", e.Msg)
	}
	return errors.Join(errs...)
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
