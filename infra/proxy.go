package main

import (
	_ "embed"
	"fmt"
	"maps"
	"time"

	"github.com/notes-stack/notes/nginx"
	"github.com/pulumi/pulumi-command/sdk/go/command/local"
	"github.com/pulumi/pulumi-docker/sdk/v4/go/docker"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// Paths inside the nginx container.
const (
	nginxTLSCert   = "/etc/nginx/tls/fullchain.pem"
	nginxTLSKey    = "/etc/nginx/tls/privkey.pem"
	acmeWebroot    = "/var/www/certbot"
	letsencryptDir = "/etc/letsencrypt"
	// certbotCABundle is notes:acmeCaBundle in the certbot container (REQUESTS_CA_BUNDLE);
	// certbotStatus the outcome of its last run, which its healthcheck reads.
	certbotCABundle = "/etc/notes-acme/ca-bundle.pem"
	// certbotCABundleTmp is where it is on engine containers: certbot's root filesystem is
	// read-only, Docker refuses the provider's uploads into such a container (even below a
	// volume), so scripts/certbot-loop.sh writes it from $NOTES_ACME_CA_BUNDLE to this tmpfs.
	certbotCABundleTmp = "/tmp/notes-acme-ca-bundle.pem"
	certbotStatus      = "/tmp/notes-certbot-status"
	nginxHTTPPort      = 80
	nginxHTTPSPort     = 443
	upstreamPort       = 8080
	placeholderDir     = "tls-placeholder"
	nginxInstallTmp    = "/tmp/notes-nginx"
	// resolveSiteFile is the site in the "server ... resolve" form, outside conf.d (not loaded)
	// until nginx-install.sh finds an nginx that takes it.
	resolveSiteFile = "notes-resolve/notes.conf"
	// nginxCertWatch is cert-watch.sh in the configuration volume (engine containers).
	nginxCertWatch = "/etc/nginx/notes-cert-watch.sh"
)

// The edge's users and limits (docs/infra.md, Hardening). nginx runs as the official image's own
// unprivileged user nginx (uid and gid 101, the same in the stand-in), with no capability: the
// per-container sysctl net.ipv4.ip_unprivileged_port_start=0 lets it bind 80 and 443. certbot
// runs as root without any capability and with nginx's group as its primary group, so the
// files it owns in its volumes (also a volume's from before) stay its own, and it can share
// the keys with nginx's group (scripts/certbot-loop.sh).
const (
	nginxUID        = 101
	nginxUser       = "101:101"
	certbotUser     = "0:101"
	nginxMemoryMB   = 256
	nginxPids       = 256
	certbotMemoryMB = 256
	certbotPids     = 64
	// nginxTempDir holds nginx's temp files and nginxPIDFile its pid: tmpfs on a read-only root
	// filesystem. Not /run: Docker mounts a tmpfs there with mode 0755 whatever its options say.
	nginxTempDir = "/var/cache/nginx"
	nginxPIDFile = "/tmp/nginx.pid"
)

// unprivilegedPorts lets a process without capabilities bind ports below 1024 in its own network
// namespace (a network sysctl, allowed per container and per swarm task, API >= 1.40).
var unprivilegedPorts = map[string]string{"net.ipv4.ip_unprivileged_port_start": "0"}

// edgeTmpfs are the writable paths of nginx and certbot on a read-only root filesystem.
var (
	nginxTmpfs   = []string{"/tmp", nginxTempDir}
	certbotTmpfs = []string{"/tmp", "/var/lib/letsencrypt", "/var/log/letsencrypt"}
)

//go:embed scripts/nginx-install.sh
var nginxInstallScript string

//go:embed scripts/cert-watch.sh
var certWatchScript string

//go:embed scripts/certbot-loop.sh
var certbotLoopScript string

//go:embed scripts/nginx-init.sh
var nginxInitScript string

// bootstrapConf is the only configuration the nginx container is created with: enough for its
// healthcheck, and 503 for everything else until the Config command installs the rendered
// configuration (which removes this file).
// nginxHealthTest is the nginx container's or task's healthcheck on both engines: /nginx-health
// through bash's /dev/tcp, which works in the official (Debian) image and the stand-in, no curl
// needed.
var nginxHealthTest = []string{"CMD", "bash", "-c",
	`exec 3<>/dev/tcp/127.0.0.1/80 && printf 'GET /nginx-health HTTP/1.0\r\nHost: localhost\r\n\r\n' >&3 && head -n1 <&3 | grep -q ' 200 '`}

const bootstrapConf = `# Installed by the Pulumi program when the container is created; replaced by conf.d/notes.conf.
server {
    listen 80 default_server;
    location = /nginx-health { access_log off; default_type application/json; return 200 '{"status":"ok"}\n'; }
    location / { return 503; }
}
`

// bootstrapMainConf is the nginx.conf the configuration volume starts with (engine containers),
// until the installer puts the rendered one there: the image's own runs workers as user nginx and
// writes below the read-only root. Its pid and temp paths are the rendered configuration's, so
// `nginx -s reload` finds the master.
var bootstrapMainConf = `# Installed with the configuration volume; replaced by the rendered nginx.conf.
pid ` + nginxPIDFile + `;
error_log /dev/stderr warn;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path ` + nginxTempDir + `/client_body;
    proxy_temp_path ` + nginxTempDir + `/proxy;
    fastcgi_temp_path ` + nginxTempDir + `/fastcgi;
    uwsgi_temp_path ` + nginxTempDir + `/uwsgi;
    scgi_temp_path ` + nginxTempDir + `/scgi;
    include conf.d/default.conf;
}
`

// nginxCheckArgs is the `docker run` of the configuration check: the installation script in
// check mode, in a container of the nginx image with no network and the nginx container's tmpfs
// paths (the temp paths must exist for nginx -t), removed at once.
func nginxCheckArgs(image, tls, domain string) []string {
	a := []string{"run", "--rm", "-i", "--network", "none"}
	for _, p := range nginxTmpfs {
		a = append(a, "--tmpfs", p)
	}
	return append(a, "--entrypoint", "sh", image,
		"-c", nginxInstallScript, "sh", tls, domain, nginxInstallTmp, placeholderDir, "check")
}

// tmpfsMap is paths as engine containers' tmpfs mounts: writable by everyone (mode 1777, which
// Docker's default for these is not), never executable.
func tmpfsMap(paths []string) pulumi.StringMap {
	m := pulumi.StringMap{}
	for _, p := range paths {
		m[p] = pulumi.String("rw,noexec,nosuid,nodev,size=64m,mode=1777")
	}
	return m
}

// ProxyArgs is what the Proxy component uses.
type ProxyArgs struct {
	Stack    string
	Provider *docker.Provider
	// Orphans is the hook that removes a container an interrupted up left under a name this
	// component creates (newOrphanHook); nil for none.
	Orphans   *pulumi.ResourceHookBinding
	OnHost    OnHost            // the configuration is installed with docker exec on the host
	HostReady []pulumi.Resource // what commands on the host wait for

	Image string
	// Network is the edge network (published ports; certbot's way out), AppNetwork the app
	// network, where nginx reaches the replicas.
	Network     pulumi.StringOutput
	AppNetwork  pulumi.StringOutput
	BindAddress string
	HTTPPort    int // published ports
	HTTPSPort   int
	RateLimit   int // writes per minute per client address; 0 = off
	// AuthMethods need the service's API token: nginx limits their attempts per address
	// (nginx.Config.AuthRatePerMinute). Empty with writeAuth none.
	AuthMethods []string
	TLS         nginx.TLSMode
	Domain      string
	TLSCert     pulumi.StringOutput // secret, tls=provided
	TLSKey      pulumi.StringOutput // secret, tls=provided
	ACME        ACMEArgs            // tls=acme

	// UpstreamDNS is the replicas' network alias: nginx resolves it at run time (Docker's
	// embedded DNS), so an app deploy changes nothing here and reloads nothing.
	UpstreamDNS string
	DrainDelay  time.Duration // the replicas': nginx's idle upstream connections close before it ends
}

// ACMEArgs is the certbot side of tls=acme.
type ACMEArgs struct {
	Email        string
	Server       string // the ACME directory URL (Config.ACMEDirectory)
	CABundle     string // PEM certificates certbot trusts for Server; "" = its default store
	CertbotImage string
	LetsEncrypt  pulumi.StringOutput // volume for /etc/letsencrypt
	Webroot      pulumi.StringOutput // volume for the HTTP-01 challenge files
}

// Proxy is the nginx container (created once, never replaced by an app deploy) and the command
// that installs the rendered configuration into it and reloads nginx gracefully. The
// configuration names the replicas by their alias only, so the command runs when the nginx
// settings or the container change, never on an app deploy.
type Proxy struct {
	pulumi.ResourceState

	Container *docker.Container
	// Check runs the new configuration through `nginx -t` in a throw-away container of the
	// nginx image, before anything of the stack changes: the migration waits for it
	// (AppArgs.ConfigChecked), so a configuration nginx rejects fails the deploy first.
	Check  *local.Command
	Config *local.Command
	// Ready is what has to finish before the new configuration is live (the config command):
	// the smoke check and retire wait for it.
	Ready []pulumi.Resource
	// CertbotName is the certbot container's name (tls=acme only).
	CertbotName pulumi.StringOutput
	// SmokeTrust is what the smoke check trusts besides the public CAs (SmokeProbe.Trust): with
	// tls=acme the placeholder certificate and ACME.CABundle; nil otherwise.
	SmokeTrust pulumi.StringInput

	// What Install needs of NewProxy.
	name, renderedHash string
	args               *ProxyArgs
	prov               pulumi.ResourceOrInvokeOption
	stdin              pulumi.StringOutput
}

// certbotHealthTest fails while certbot's last run failed (scripts/certbot-loop.sh writes
// certbotStatus after every run); before the first run has ended there is no status, and the
// container counts as healthy, so a slow first issuance is not reported as a failure.
var certbotHealthTest = []string{"CMD", "sh", "-c", `! grep -qs '^failed' "$1"`, "sh", certbotStatus}

// certbotArgs is the certbot command line: the webroot HTTP-01 challenge for domain against the
// configured ACME directory, renewing only when due.
func certbotArgs(domain string, acme ACMEArgs) []string {
	return []string{"certonly", "--webroot", "-w", acmeWebroot, "-d", domain, "--email", acme.Email,
		"--server", acme.Server, "--agree-tos", "--non-interactive", "--keep-until-expiring", "--no-eff-email"}
}

// nginxConfig is the nginx package configuration: the replicas by their alias, resolved at run
// time through Docker's embedded DNS with a short cache (nginx.Defaults: ResolverValid 1s; retire
// waits longer than that).
func nginxConfig(args *ProxyArgs) nginx.Config {
	c := nginx.Defaults()
	if args.Domain != "" {
		c.ServerNames = []string{args.Domain}
	}
	c.UpstreamDNS = args.UpstreamDNS
	c.UpstreamPort = upstreamPort
	c.HTTPPort = nginxHTTPPort
	c.HTTPSPort = nginxHTTPSPort
	c.RedirectPort = args.HTTPSPort
	c.ACMEWebroot = acmeWebroot
	c.WriteRatePerMinute = args.RateLimit
	c.AuthMethods = args.AuthMethods
	c.TLS.Mode = args.TLS
	// The installer links or writes the certificate here in both TLS modes.
	c.TLS.CertFile, c.TLS.KeyFile = nginxTLSCert, nginxTLSKey
	// Docker's embedded DNS, for run-time lookups.
	c.Resolver = []string{"127.0.0.11"}
	// With upstream keep-alive (the resolve form), nginx closes an idle connection to a replica
	// before the replica's drain ends, so the replica never closes one under a request nginx
	// is sending (docs/service.md, Shutdown).
	c.UpstreamKeepaliveTimeout = max(args.DrainDelay-time.Second, time.Second)
	// A replica is on the same Docker network: a connect takes well under a millisecond, unless
	// the address has no container behind it any more (a replica that crashed or was removed
	// while nginx's DNS answer still names it), where the SYN goes nowhere. Give up on it after
	// a second and try the next address, rather than after nginx's 5 s default.
	c.ProxyConnectTimeout = time.Second
	// The master runs as nginx's own unprivileged user: no "user" directive (it would only warn),
	// temp files on a tmpfs.
	c.User = ""
	c.TempDir = nginxTempDir
	c.PIDFile = nginxPIDFile
	return c
}

// renderNginx renders and validates the configuration: the variable proxy_pass form every nginx
// takes as conf.d/notes.conf, and the "server ... resolve" form (nginx >= 1.27.3, keeps the
// upstream keep-alive pool) as resolveSiteFile, which scripts/nginx-install.sh installs instead
// when the running nginx has it.
func renderNginx(args *ProxyArgs) (map[string][]byte, error) {
	c := nginxConfig(args)
	files, err := nginx.Render(c)
	if err != nil {
		return nil, err
	}
	c.UpstreamResolve = true
	alt, err := nginx.Render(c)
	if err != nil {
		return nil, err
	}
	files[resolveSiteFile] = alt[nginx.SiteFile]
	return files, nil
}

// nginxDNSValid is how long nginx caches the alias's addresses (nginx.Defaults' ResolverValid).
func nginxDNSValid() time.Duration { return nginx.Defaults().ResolverValid }

// NewProxy registers the Proxy component name (notes-<stack>-nginx, also the container's name):
// the nginx side of the roll-out phase.
func NewProxy(ctx *pulumi.Context, name string, args *ProxyArgs, opts ...pulumi.ResourceOption) (*Proxy, error) {
	p := &Proxy{}
	if err := ctx.RegisterComponentResource("notes:infra:Proxy", name, p, opts...); err != nil {
		return nil, err
	}
	prov := pulumi.Provider(args.Provider)
	acme := args.TLS == nginx.TLSACME

	// Rendered once, from the configuration alone: nothing of the app is in it.
	files, err := renderNginx(args)
	if err != nil {
		return nil, fmt.Errorf("nginx configuration: %w", err)
	}
	renderedHash := hashFiles(files)

	img, err := docker.NewRemoteImage(ctx, name+"-image", &docker.RemoteImageArgs{
		Name:        pulumi.String(args.Image),
		KeepLocally: pulumi.Bool(true),
	}, pulumi.Parent(p), prov)
	if err != nil {
		return nil, err
	}

	ports := docker.ContainerPortArray{docker.ContainerPortArgs{
		Internal: pulumi.Int(nginxHTTPPort), External: pulumi.Int(args.HTTPPort),
		Ip: pulumi.String(args.BindAddress), Protocol: pulumi.String("tcp"),
	}}
	if args.TLS != nginx.TLSOff {
		ports = append(ports, docker.ContainerPortArgs{
			Internal: pulumi.Int(nginxHTTPSPort), External: pulumi.Int(args.HTTPSPort),
			Ip: pulumi.String(args.BindAddress), Protocol: pulumi.String("tcp"),
		})
	}
	// The configuration lives in a volume at /etc/nginx (the root filesystem is read-only):
	// kept over a restart of the container, and handed to a new container, which starts with
	// the last configuration installed.
	confVol, err := docker.NewVolume(ctx, name+"-conf", &docker.VolumeArgs{
		Name:   pulumi.String(name + "-conf"),
		Labels: volumeLabels(args.Stack, "nginx-conf"),
	}, pulumi.Parent(p), prov, pulumi.DependsOn(args.HostReady))
	if err != nil {
		return nil, err
	}
	confInit, err := newNginxInit(ctx, name+"-init", args, confVol.Name, img.ImageId, pulumi.Parent(p))
	if err != nil {
		return nil, err
	}
	volumes := docker.ContainerVolumeArray{
		docker.ContainerVolumeArgs{VolumeName: confVol.Name, ContainerPath: pulumi.String("/etc/nginx")},
	}
	if acme {
		volumes = append(volumes,
			docker.ContainerVolumeArgs{VolumeName: args.ACME.LetsEncrypt, ContainerPath: pulumi.String(letsencryptDir), ReadOnly: pulumi.Bool(true)},
			docker.ContainerVolumeArgs{VolumeName: args.ACME.Webroot, ContainerPath: pulumi.String(acmeWebroot), ReadOnly: pulumi.Bool(true)},
		)
	}
	// Nothing here depends on the app: an app deploy never replaces nginx.
	cargs := &docker.ContainerArgs{
		Name:  pulumi.String(name),
		Image: img.ImageId,
		Ports: ports,
		NetworksAdvanced: docker.ContainerNetworksAdvancedArray{
			docker.ContainerNetworksAdvancedArgs{Name: args.Network},
			docker.ContainerNetworksAdvancedArgs{Name: args.AppNetwork},
		},
		Volumes:      volumes,
		User:         pulumi.String(nginxUser),
		ReadOnly:     pulumi.Bool(true),
		Tmpfs:        tmpfsMap(nginxTmpfs),
		Capabilities: docker.ContainerCapabilitiesArgs{Drops: pulumi.ToStringArray([]string{"ALL"})},
		Sysctls:      pulumi.ToStringMap(unprivilegedPorts),
		Memory:       pulumi.Int(nginxMemoryMB),
		MemorySwap:   pulumi.Int(nginxMemoryMB), // explicit, or the provider reads back 2x and diffs
		Healthcheck: docker.ContainerHealthcheckArgs{
			Tests:       pulumi.ToStringArray(nginxHealthTest),
			Interval:    pulumi.String("5s"),
			Timeout:     pulumi.String("3s"),
			Retries:     pulumi.Int(3),
			StartPeriod: pulumi.String("5s"),
		},
		Wait:                pulumi.Bool(true),
		WaitTimeout:         pulumi.Int(60),
		Restart:             pulumi.String("unless-stopped"),
		SecurityOpts:        pulumi.ToStringArray([]string{"no-new-privileges"}),
		StopTimeout:         pulumi.Int(30),
		DestroyGraceSeconds: pulumi.Int(30),
		LogDriver:           pulumi.String("json-file"),
		LogOpts:             logOpts(),
		Labels:              containerLabels(args.Stack, "nginx"),
	}
	if acme {
		// The watcher (in the configuration volume: /docker-entrypoint.d is on the read-only
		// root) starts before the image's entrypoint; its one parameter comes from the
		// container's environment.
		cargs.Envs = pulumi.StringArray{pulumi.String("NOTES_CERT_DOMAIN=" + args.Domain)}
		cargs.Entrypoints = pulumi.ToStringArray([]string{"/bin/sh", "-c", nginxCertWatch + ` && exec /docker-entrypoint.sh "$@"`, "sh"})
		cargs.Command = pulumi.ToStringArray([]string{"nginx", "-g", "daemon off;"})
	}

	// stdin: a base64 tar.gz of the files (plus the TLS material). Secret when it holds a key.
	var stdin pulumi.StringOutput
	switch args.TLS {
	case nginx.TLSProvided:
		stdin = pulumi.All(args.TLSCert, args.TLSKey).ApplyT(func(v []any) (string, error) {
			withTLS := maps.Clone(files)
			withTLS["tls/fullchain.pem"] = []byte(v[0].(string))
			withTLS["tls/privkey.pem"] = []byte(v[1].(string))
			return tarGzBase64(withTLS, map[string]int64{"tls/privkey.pem": 0o600})
		}).(pulumi.StringOutput)
		stdin = pulumi.ToSecret(stdin).(pulumi.StringOutput)
	case nginx.TLSACME:
		// The placeholder's key is random and kept in the state (newPlaceholderKey), so the
		// stdin holding it is secret; its certificate is the same bytes on every run.
		key, err := newPlaceholderKey(ctx, name+"-placeholder-key", pulumi.Parent(p))
		if err != nil {
			return nil, err
		}
		cert := key.ApplyT(func(k string) (string, error) {
			c, err := placeholderCert(args.Domain, k)
			return string(c), err
		}).(pulumi.StringOutput)
		stdin = pulumi.ToSecret(pulumi.All(cert, key).ApplyT(func(v []any) (string, error) {
			withCert := maps.Clone(files)
			withCert[placeholderDir+"/fullchain.pem"] = []byte(v[0].(string))
			withCert[placeholderDir+"/privkey.pem"] = []byte(v[1].(string))
			return tarGzBase64(withCert, map[string]int64{placeholderDir + "/privkey.pem": 0o600})
		})).(pulumi.StringOutput)
		p.SmokeTrust = pulumi.Sprintf("%s%s", cert, args.ACME.CABundle)
	default:
		b64, err := tarGzBase64(files, nil)
		if err != nil {
			return nil, err
		}
		stdin = pulumi.String(b64).ToStringOutput()
	}

	// The same files and the same script as the installation, in a container of the same image
	// that nothing else sees (no network, removed at once).
	checkCmd, checkEnv := args.OnHost.Docker(nginxCheckArgs(args.Image, string(args.TLS), args.Domain)...)
	check, err := local.NewCommand(ctx, name+"-config-check", &local.CommandArgs{
		Create:      pulumi.String(checkCmd),
		Environment: checkEnv,
		Stdin:       stdin,
		// Re-run with the configuration (stdin: with the TLS material) and the image.
		Triggers: pulumi.Array{pulumi.String(renderedHash), img.ImageId},
		Logging:  local.LoggingStdoutAndStderr,
	}, pulumi.Parent(p), pulumi.DependsOn(append([]pulumi.Resource{img}, args.HostReady...)))
	if err != nil {
		return nil, err
	}
	p.Check = check
	// Not even a new nginx image replaces the container before the check passed.
	c, err := docker.NewContainer(ctx, name+"-container", cargs, pulumi.Parent(p), prov,
		pulumi.DependsOn(append([]pulumi.Resource{p.Check, confInit}, args.HostReady...)), pulumi.ResourceHooks(args.Orphans))
	if err != nil {
		return nil, err
	}
	p.Container = c
	if _, err := newPidsLimit(ctx, name+"-pids", args.OnHost, c, nginxPids, pulumi.Parent(p)); err != nil {
		return nil, err
	}
	p.name, p.renderedHash, p.args, p.prov, p.stdin = name, renderedHash, args, prov, stdin
	return p, nil
}

// Install registers the rest of the Proxy: the command that installs the configuration into the
// nginx container, and certbot (tls=acme). NewProxy comes first, so the app's migration can wait
// for Check. upstreamsReady (the replicas) is only what the installation waits for, not one of
// its inputs: its first run finds the alias with an address (a stack that switches from named
// upstreams to the alias would otherwise answer 502 until its new replicas exist), and an app
// deploy, which replaces the replicas, does not re-run it.
func (p *Proxy) Install(ctx *pulumi.Context, upstreamsReady []pulumi.Resource) error {
	name, args, prov, c := p.name, p.args, p.prov, p.Container
	acme := args.TLS == nginx.TLSACME
	cmd, env := args.OnHost.Docker("exec", "-i", name, "sh", "-c", nginxInstallScript, "sh",
		string(args.TLS), args.Domain, nginxInstallTmp, placeholderDir)
	conf, err := local.NewCommand(ctx, name+"-config", &local.CommandArgs{
		Create:      pulumi.String(cmd),
		Environment: env,
		Stdin:       p.stdin,
		// Only the configuration itself or a new container re-run it: never an app deploy.
		Triggers: pulumi.Array{pulumi.String(p.renderedHash), c.ID()},
		Logging:  local.LoggingStdoutAndStderr,
		// The container's removal takes the files with it.
	}, pulumi.Parent(p), pulumi.DependsOn(append([]pulumi.Resource{c, p.Check}, upstreamsReady...)))
	if err != nil {
		return err
	}
	p.Config = conf
	p.Ready = []pulumi.Resource{conf}

	if acme {
		cbImg, err := docker.NewRemoteImage(ctx, name+"-certbot-image", &docker.RemoteImageArgs{
			Name:        pulumi.String(args.ACME.CertbotImage),
			KeepLocally: pulumi.Bool(true),
		}, pulumi.Parent(p), prov)
		if err != nil {
			return err
		}
		// Obtains the certificate, then renews it when due (checked hourly, certbot acts 30 days
		// before expiry); the nginx container's cert-watch loop reloads nginx on a new one. The
		// container turns unhealthy while the last run failed (scripts/certbot-loop.sh).
		envs := pulumi.StringArray{pulumi.String("NOTES_CERTBOT_STATUS=" + certbotStatus),
			pulumi.Sprintf("NOTES_CERT_GROUP=%d", nginxUID)}
		if args.ACME.CABundle != "" {
			// certbot's HTTP client (python-requests) trusts exactly this file for the ACME server.
			// Certificates, not secrets: the environment may hold them.
			envs = append(envs, pulumi.String("REQUESTS_CA_BUNDLE="+certbotCABundleTmp),
				pulumi.String("NOTES_ACME_CA_BUNDLE="+args.ACME.CABundle))
		}
		certbot, err := docker.NewContainer(ctx, name+"-certbot", &docker.ContainerArgs{
			Name:        pulumi.String(objectName(args.Stack, "certbot")),
			Image:       cbImg.ImageId,
			Entrypoints: pulumi.ToStringArray(append([]string{"/bin/sh", "-c", certbotLoopScript, "sh"}, certbotArgs(args.Domain, args.ACME)...)),
			Envs:        envs,
			// The stack's edge network rather than the host's shared default bridge; it reaches
			// the internet the same way, and a CA on this network by its name.
			NetworksAdvanced: docker.ContainerNetworksAdvancedArray{docker.ContainerNetworksAdvancedArgs{Name: args.Network}},
			Volumes: docker.ContainerVolumeArray{
				docker.ContainerVolumeArgs{VolumeName: args.ACME.LetsEncrypt, ContainerPath: pulumi.String(letsencryptDir)},
				docker.ContainerVolumeArgs{VolumeName: args.ACME.Webroot, ContainerPath: pulumi.String(acmeWebroot)},
			},
			Healthcheck: docker.ContainerHealthcheckArgs{
				Tests: pulumi.ToStringArray(certbotHealthTest),
				// Unhealthy about 30 s after a failed run.
				Interval: pulumi.String("15s"), Timeout: pulumi.String("5s"), Retries: pulumi.Int(2), StartPeriod: pulumi.String("5s"),
			},
			User:         pulumi.String(certbotUser),
			ReadOnly:     pulumi.Bool(true),
			Tmpfs:        tmpfsMap(certbotTmpfs),
			Capabilities: docker.ContainerCapabilitiesArgs{Drops: pulumi.ToStringArray([]string{"ALL"})},
			Memory:       pulumi.Int(certbotMemoryMB),
			MemorySwap:   pulumi.Int(certbotMemoryMB),
			Restart:      pulumi.String("unless-stopped"),
			SecurityOpts: pulumi.ToStringArray([]string{"no-new-privileges"}),
			LogDriver:    pulumi.String("json-file"),
			LogOpts:      logOpts(),
			Labels:       containerLabels(args.Stack, "certbot"),
		}, pulumi.Parent(p), prov, pulumi.DependsOn([]pulumi.Resource{conf}), pulumi.ResourceHooks(args.Orphans))
		if err != nil {
			return err
		}
		if _, err := newPidsLimit(ctx, name+"-certbot-pids", args.OnHost, certbot, certbotPids, pulumi.Parent(p)); err != nil {
			return err
		}
		p.CertbotName = certbot.Name
	}

	outs := pulumi.Map{"container": c.Name, "configHash": pulumi.String(p.renderedHash)}
	return ctx.RegisterResourceOutputs(p, outs)
}

// newNginxInit prepares the configuration volume (scripts/nginx-init.sh) in a throwaway container
// of the nginx image, before the nginx container is created: again when the bootstrap files or
// the image change.
func newNginxInit(ctx *pulumi.Context, name string, args *ProxyArgs, volume, image pulumi.StringOutput,
	opts ...pulumi.ResourceOption) (*local.Command, error) {
	files := map[string][]byte{"nginx.conf": []byte(bootstrapMainConf), "conf.d/default.conf": []byte(bootstrapConf)}
	if args.TLS == nginx.TLSACME {
		files["notes-cert-watch.sh"] = []byte(certWatchScript)
	}
	stdin, err := tarGzBase64(files, nil)
	if err != nil {
		return nil, err
	}
	cmd := pulumi.All(volume, image).ApplyT(func(v []any) string {
		cmd, _ := args.OnHost.Docker("run", "--rm", "-i", "--user", fmt.Sprintf("0:%d", nginxUID),
			"--cap-drop", "ALL", "--security-opt", "no-new-privileges", "--network", "none",
			"-v", v[0].(string)+":/etc/nginx", "--entrypoint", "sh", v[1].(string),
			"-c", nginxInitScript, "sh", fmt.Sprint(nginxUID))
		return cmd
	}).(pulumi.StringOutput)
	_, env := args.OnHost.Docker()
	return local.NewCommand(ctx, name, &local.CommandArgs{
		Create:      cmd,
		Environment: env,
		Stdin:       pulumi.String(stdin),
		Triggers:    pulumi.Array{volume, image, pulumi.String(hashFiles(files))},
		Logging:     local.LoggingStdoutAndStderr,
	}, append(opts, pulumi.DependsOn(args.HostReady))...)
}

// newPidsLimit sets container's pids limit with `docker update` (the provider has no such input),
// in place: no restart, and no replacement of a protected container. Again for a new container.
func newPidsLimit(ctx *pulumi.Context, name string, on OnHost, container *docker.Container, limit int,
	opts ...pulumi.ResourceOption) (*local.Command, error) {
	cmd := container.Name.ApplyT(func(n string) string {
		cmd, _ := on.Docker("update", "--pids-limit", fmt.Sprint(limit), n)
		return cmd
	}).(pulumi.StringOutput)
	_, env := on.Docker()
	return local.NewCommand(ctx, name, &local.CommandArgs{
		Create:      cmd,
		Environment: env,
		Triggers:    pulumi.Array{container.ID(), pulumi.Int(limit)},
		Logging:     local.LoggingStderr,
	}, append(opts, pulumi.DependsOn([]pulumi.Resource{container}))...)
}
