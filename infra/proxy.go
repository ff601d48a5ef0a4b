package main

import (
	_ "embed"
	"fmt"
	"strings"

	"github.com/notes-stack/notes/nginx"
	"github.com/pulumi/pulumi-command/sdk/go/command/local"
	"github.com/pulumi/pulumi-docker/sdk/v4/go/docker"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// Paths inside the nginx container.
const (
	nginxTLSCert    = "/etc/nginx/tls/fullchain.pem"
	nginxTLSKey     = "/etc/nginx/tls/privkey.pem"
	acmeWebroot     = "/var/www/certbot"
	letsencryptDir  = "/etc/letsencrypt"
	nginxHTTPPort   = 80
	nginxHTTPSPort  = 443
	upstreamPort    = 8080
	placeholderDir  = "tls-placeholder"
	nginxInstallTmp = "/tmp/notes-nginx"
)

//go:embed scripts/nginx-install.sh
var nginxInstallScript string

//go:embed scripts/cert-watch.sh
var certWatchScript string

// bootstrapConf is the only configuration the nginx container is created with: enough for its
// healthcheck, and 503 for everything else until the Config command installs the rendered
// configuration (which removes this file).
const bootstrapConf = `# Installed by the Pulumi program when the container is created; replaced by conf.d/notes.conf.
server {
    listen 80 default_server;
    location = /nginx-health { access_log off; default_type application/json; return 200 '{"status":"ok"}\n'; }
    location / { return 503; }
}
`

// Proxy is the nginx container (created once, never replaced by an app deploy) and the command
// that installs the rendered configuration into it and reloads nginx gracefully.
type Proxy struct {
	pulumi.ResourceState

	Image     *docker.RemoteImage
	Container *docker.Container
	Config    *local.Command
	Certbot   *docker.Container // tls=acme only

	// Rendered is the rendered nginx configuration (path relative to /etc/nginx → content).
	Rendered pulumi.MapOutput
}

// NginxConfig is the nginx package configuration for the given upstream host:port list.
func NginxConfig(cfg *Config, upstreams []string) nginx.Config {
	c := nginx.Defaults()
	if cfg.Domain != "" {
		c.ServerNames = []string{cfg.Domain}
	}
	c.Upstreams = upstreams
	c.HTTPPort = nginxHTTPPort
	c.HTTPSPort = nginxHTTPSPort
	c.RedirectPort = cfg.HTTPSPort
	c.ACMEWebroot = acmeWebroot
	c.WriteRatePerMinute = cfg.RateLimit
	switch cfg.TLS {
	case TLSProvided:
		c.TLS.Mode = nginx.TLSProvided
	case TLSACME:
		c.TLS.Mode = nginx.TLSACME
	default:
		c.TLS.Mode = nginx.TLSOff
	}
	// The installer links or writes the certificate here in both TLS modes.
	c.TLS.CertFile, c.TLS.KeyFile = nginxTLSCert, nginxTLSKey
	// Docker's embedded DNS, for run-time lookups.
	c.Resolver = []string{"127.0.0.11"}
	return c
}

// RenderNginx renders and validates the configuration for the upstream list.
func RenderNginx(cfg *Config, upstreamNames []string) (map[string][]byte, error) {
	ups := make([]string, len(upstreamNames))
	for i, n := range upstreamNames {
		ups[i] = fmt.Sprintf("%s:%d", n, upstreamPort)
	}
	c := NginxConfig(cfg, ups)
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return nginx.Render(c)
}

func NewProxy(ctx *pulumi.Context, cfg *Config, host *Host, net *Network, app *App, opts ...pulumi.ResourceOption) (*Proxy, error) {
	name := cfg.Name("nginx")
	p := &Proxy{}
	if err := ctx.RegisterComponentResource("notes:infra:Proxy", name, p, opts...); err != nil {
		return nil, err
	}
	prov := pulumi.Provider(host.Provider)

	// Fail early (at preview) when the configuration does not validate.
	if _, err := RenderNginx(cfg, []string{"preview-check"}); err != nil {
		return nil, fmt.Errorf("nginx configuration: %w", err)
	}

	img, err := docker.NewRemoteImage(ctx, name+"-image", &docker.RemoteImageArgs{
		Name:        pulumi.String(cfg.NginxImage),
		KeepLocally: pulumi.Bool(true),
	}, pulumi.Parent(p), prov)
	if err != nil {
		return nil, err
	}
	p.Image = img

	ports := docker.ContainerPortArray{docker.ContainerPortArgs{
		Internal: pulumi.Int(nginxHTTPPort), External: pulumi.Int(cfg.HTTPPort),
		Ip: pulumi.String(cfg.BindAddress), Protocol: pulumi.String("tcp"),
	}}
	if cfg.TLS != TLSOff {
		ports = append(ports, docker.ContainerPortArgs{
			Internal: pulumi.Int(nginxHTTPSPort), External: pulumi.Int(cfg.HTTPSPort),
			Ip: pulumi.String(cfg.BindAddress), Protocol: pulumi.String("tcp"),
		})
	}
	uploads := docker.ContainerUploadArray{docker.ContainerUploadArgs{
		File:    pulumi.String("/etc/nginx/conf.d/default.conf"),
		Content: pulumi.String(bootstrapConf),
	}}
	var volumes docker.ContainerVolumeArray
	if cfg.TLS == TLSACME {
		uploads = append(uploads, docker.ContainerUploadArgs{
			File:       pulumi.String("/docker-entrypoint.d/90-notes-cert-watch.sh"),
			Content:    pulumi.String(strings.ReplaceAll(certWatchScript, "@DOMAIN@", cfg.Domain)),
			Executable: pulumi.Bool(true),
		})
		volumes = docker.ContainerVolumeArray{
			docker.ContainerVolumeArgs{VolumeName: net.LetsEncrypt.Name, ContainerPath: pulumi.String(letsencryptDir), ReadOnly: pulumi.Bool(true)},
			docker.ContainerVolumeArgs{VolumeName: net.ACMEWebroot.Name, ContainerPath: pulumi.String(acmeWebroot), ReadOnly: pulumi.Bool(true)},
		}
	}
	// Nothing here depends on the app: an app deploy never replaces nginx.
	c, err := docker.NewContainer(ctx, name+"-container", &docker.ContainerArgs{
		Name:             pulumi.String(cfg.Name("nginx")),
		Image:            img.ImageId,
		Ports:            ports,
		NetworksAdvanced: docker.ContainerNetworksAdvancedArray{docker.ContainerNetworksAdvancedArgs{Name: net.Network.Name}},
		Uploads:          uploads,
		Volumes:          volumes,
		// bash's /dev/tcp: works in the official (Debian) image and the stand-in, no curl needed.
		Healthcheck: docker.ContainerHealthcheckArgs{
			Tests: pulumi.ToStringArray([]string{"CMD", "bash", "-c",
				`exec 3<>/dev/tcp/127.0.0.1/80 && printf 'GET /nginx-health HTTP/1.0\r\nHost: localhost\r\n\r\n' >&3 && head -n1 <&3 | grep -q ' 200 '`}),
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
		Labels:              containerLabels(cfg, "nginx"),
	}, pulumi.Parent(p), prov, pulumi.DependsOn(host.Ready))
	if err != nil {
		return nil, err
	}
	p.Container = c

	// The rendered configuration, from the replicas' names (known once they exist).
	rendered := app.ReplicaNames.ApplyT(func(names []string) (map[string]string, error) {
		files, err := RenderNginx(cfg, names)
		if err != nil {
			return nil, err
		}
		out := make(map[string]string, len(files))
		for k, v := range files {
			out[k] = string(v)
		}
		return out, nil
	}).(pulumi.StringMapOutput)
	p.Rendered = rendered.ApplyT(func(m map[string]string) map[string]any {
		out := make(map[string]any, len(m))
		for k, v := range m {
			out[k] = v
		}
		return out
	}).(pulumi.MapOutput)
	renderedHash := rendered.ApplyT(func(m map[string]string) string {
		files := make(map[string][]byte, len(m))
		for k, v := range m {
			files[k] = []byte(v)
		}
		return hashFiles(files)
	}).(pulumi.StringOutput)

	// stdin: a base64 tar.gz of the files (plus the TLS material). Secret when it holds a key.
	var stdin pulumi.StringOutput
	switch cfg.TLS {
	case TLSProvided:
		stdin = pulumi.All(rendered, cfg.TLSCert, cfg.TLSKey).ApplyT(func(v []any) (string, error) {
			files := toBytes(v[0].(map[string]string))
			files["tls/fullchain.pem"] = []byte(v[1].(string))
			files["tls/privkey.pem"] = []byte(v[2].(string))
			return tarGzBase64(files, map[string]int64{"tls/privkey.pem": 0o600})
		}).(pulumi.StringOutput)
		stdin = pulumi.ToSecret(stdin).(pulumi.StringOutput)
	case TLSACME:
		cert, key, err := placeholderCert(cfg.Domain)
		if err != nil {
			return nil, err
		}
		stdin = rendered.ApplyT(func(m map[string]string) (string, error) {
			files := toBytes(m)
			files[placeholderDir+"/fullchain.pem"] = cert
			files[placeholderDir+"/privkey.pem"] = key
			return tarGzBase64(files, map[string]int64{placeholderDir + "/privkey.pem": 0o600})
		}).(pulumi.StringOutput)
	default:
		stdin = rendered.ApplyT(func(m map[string]string) (string, error) {
			return tarGzBase64(toBytes(m), nil)
		}).(pulumi.StringOutput)
	}

	script := strings.NewReplacer("@TLS@", cfg.TLS, "@DOMAIN@", cfg.Domain, "@TMP@", nginxInstallTmp, "@PLACEHOLDER@", placeholderDir).Replace(nginxInstallScript)
	cmd, env := host.DockerCommand("exec", "-i", cfg.Name("nginx"), "sh", "-c", script)
	conf, err := local.NewCommand(ctx, name+"-config", &local.CommandArgs{
		Create:      pulumi.String(cmd),
		Environment: env,
		Stdin:       stdin,
		Triggers:    pulumi.Array{renderedHash, c.ID()},
		Logging:     local.LoggingStdoutAndStderr,
		// The container's removal takes the files with it.
	}, pulumi.Parent(p), pulumi.DependsOn(append([]pulumi.Resource{c}, replicasAsResources(app)...)))
	if err != nil {
		return nil, err
	}
	p.Config = conf

	if cfg.TLS == TLSACME {
		cbImg, err := docker.NewRemoteImage(ctx, name+"-certbot-image", &docker.RemoteImageArgs{
			Name:        pulumi.String(cfg.CertbotImage),
			KeepLocally: pulumi.Bool(true),
		}, pulumi.Parent(p), prov)
		if err != nil {
			return nil, err
		}
		args := []string{"certonly", "--webroot", "-w", acmeWebroot, "-d", cfg.Domain, "--email", cfg.ACMEEmail,
			"--agree-tos", "--non-interactive", "--keep-until-expiring", "--no-eff-email"}
		if cfg.ACMEStaging {
			args = append(args, "--staging")
		}
		loop := fmt.Sprintf(`trap 'exit 0' TERM INT
while :; do
  certbot %s || echo "certbot failed; retrying in 1h" >&2
  sleep 3600 & wait $!
  n=$((${n:-0}+1)); [ $n -lt 12 ] && continue; n=0
done`, shellJoin(args))
		// Obtains the certificate, then renews it when due (checked hourly, certbot acts 30 days
		// before expiry); the nginx container's cert-watch loop reloads nginx on a new one.
		p.Certbot, err = docker.NewContainer(ctx, name+"-certbot", &docker.ContainerArgs{
			Name:        pulumi.String(cfg.Name("certbot")),
			Image:       cbImg.ImageId,
			Entrypoints: pulumi.ToStringArray([]string{"/bin/sh", "-c", loop}),
			Volumes: docker.ContainerVolumeArray{
				docker.ContainerVolumeArgs{VolumeName: net.LetsEncrypt.Name, ContainerPath: pulumi.String(letsencryptDir)},
				docker.ContainerVolumeArgs{VolumeName: net.ACMEWebroot.Name, ContainerPath: pulumi.String(acmeWebroot)},
			},
			Restart:      pulumi.String("unless-stopped"),
			SecurityOpts: pulumi.ToStringArray([]string{"no-new-privileges"}),
			LogDriver:    pulumi.String("json-file"),
			LogOpts:      logOpts(),
			Labels:       containerLabels(cfg, "certbot"),
		}, pulumi.Parent(p), prov, pulumi.DependsOn([]pulumi.Resource{conf}))
		if err != nil {
			return nil, err
		}
	}

	outs := pulumi.Map{"container": c.Name, "configHash": renderedHash}
	if err := ctx.RegisterResourceOutputs(p, outs); err != nil {
		return nil, err
	}
	return p, nil
}

func replicasAsResources(app *App) []pulumi.Resource {
	out := make([]pulumi.Resource, len(app.Replicas))
	for i, r := range app.Replicas {
		out[i] = r
	}
	return out
}

func toBytes(m map[string]string) map[string][]byte {
	out := make(map[string][]byte, len(m))
	for k, v := range m {
		out[k] = []byte(v)
	}
	return out
}
