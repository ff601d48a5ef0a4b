package main

import (
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/pulumi/pulumi-command/sdk/go/command/local"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// Smoke is the post-deploy check: it polls healthUrl (/readyz through nginx, so nginx, a replica
// and Postgres all answer) and fails `pulumi up` when it does not get a 200 within about a
// minute. It runs after the nginx configuration was installed, on every app or proxy change.
type Smoke struct {
	pulumi.ResourceState
	Check *local.Command
}

const smokeAttempts = 30

func NewSmoke(ctx *pulumi.Context, cfg *Config, host *Host, app *App, proxy *Proxy, opts ...pulumi.ResourceOption) (*Smoke, error) {
	name := cfg.Name("smoke")
	s := &Smoke{}
	if err := ctx.RegisterComponentResource("notes:infra:Smoke", name, s, opts...); err != nil {
		return nil, err
	}
	cmd, env := smokeCommand(cfg, host)
	c, err := local.NewCommand(ctx, name+"-check", &local.CommandArgs{
		Create:      pulumi.String(cmd),
		Environment: env,
		Triggers:    pulumi.Array{app.RevisionID, proxy.Config.ID(), proxy.Container.ID()},
		Logging:     local.LoggingStdoutAndStderr,
	}, pulumi.Parent(s), pulumi.DependsOn([]pulumi.Resource{proxy.Config}))
	if err != nil {
		return nil, err
	}
	s.Check = c
	if err := ctx.RegisterResourceOutputs(s, pulumi.Map{}); err != nil {
		return nil, err
	}
	return s, nil
}

// probeAddress is where the Docker host's published ports are reached from the machine running
// Pulumi, and whether that works at all (a remote host that binds nginx to its loopback is not
// reachable from here).
func probeAddress(cfg *Config) (string, bool) {
	bind := net.ParseIP(cfg.BindAddress)
	switch {
	case strings.HasPrefix(cfg.DockerHost, "ssh://"):
		t, _ := ParseSSH(cfg.DockerHost)
		if bind != nil && bind.IsLoopback() && !isLoopbackHost(t.Host) {
			return "", false
		}
		if bind != nil && !bind.IsUnspecified() && !bind.IsLoopback() {
			return cfg.BindAddress, true
		}
		return t.Host, true
	case strings.HasPrefix(cfg.DockerHost, "tcp://"):
		u, _ := url.Parse(cfg.DockerHost)
		if bind != nil && bind.IsLoopback() && !isLoopbackHost(u.Hostname()) {
			return "", false
		}
		if bind != nil && !bind.IsUnspecified() && !bind.IsLoopback() {
			return cfg.BindAddress, true
		}
		return u.Hostname(), true
	default:
		if bind != nil && !bind.IsUnspecified() {
			return cfg.BindAddress, true
		}
		return "127.0.0.1", true
	}
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// smokeCommand polls the health URL with curl from here, or, when the published port is not
// reachable from here, from inside the nginx container (bash /dev/tcp, through nginx's own
// listener and the upstreams).
func smokeCommand(cfg *Config, host *Host) (string, pulumi.StringMap) {
	healthURL := cfg.BaseURL() + "/readyz"
	addr, ok := probeAddress(cfg)
	if ok {
		args := []string{"curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5"}
		if cfg.TLS != TLSOff {
			// The check proves the stack answers; certificate validity is certbot's job (and the
			// ACME placeholder is self-signed until the first certificate arrives).
			args = append(args, "--insecure")
		}
		if cfg.PublicHost() != addr {
			args = append(args, "--connect-to", fmt.Sprintf("%s::%s:", bracketIPv6(cfg.PublicHost()), bracketIPv6(addr)))
		}
		args = append(args, healthURL)
		script := fmt.Sprintf(`url=%s
i=0
while [ $i -lt %d ]; do
  i=$((i+1))
  code=$(%s 2>/dev/null || true)
  if [ "$code" = 200 ]; then echo "smoke: $url answered 200 (attempt $i)"; exit 0; fi
  sleep 2
done
echo "smoke: $url did not answer 200 (last status: ${code:-none}) after %d attempts" >&2
exit 1`, shellQuote(healthURL), smokeAttempts, shellJoin(args), smokeAttempts)
		return script, pulumi.StringMap{}
	}
	// The host name is a printf argument, shell-quoted, never part of the format string.
	inner := fmt.Sprintf(`i=0; while [ $i -lt %d ]; do i=$((i+1)); `+
		`if exec 3<>/dev/tcp/127.0.0.1/80 && printf 'GET /readyz HTTP/1.0\r\nHost: %%s\r\n\r\n' %s >&3 && head -n1 <&3 | grep -q " 200 "; then echo "smoke: /readyz answered 200 through nginx (attempt $i)"; exit 0; fi; `+
		`sleep 2; done; echo "smoke: /readyz did not answer 200 through nginx" >&2; exit 1`, smokeAttempts, shellQuote(bracketIPv6(cfg.PublicHost())))
	cmd, env := host.DockerCommand("exec", cfg.Name("nginx"), "bash", "-c", inner)
	return cmd, env
}

// bracketIPv6 puts an IPv6 literal in brackets (URL authority, Host header, curl --connect-to).
func bracketIPv6(h string) string {
	if strings.Contains(h, ":") && !strings.HasPrefix(h, "[") {
		return "[" + h + "]"
	}
	return h
}
