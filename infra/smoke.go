package main

import (
	_ "embed"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/pulumi/pulumi-command/sdk/go/command/local"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

//go:embed scripts/smoke.sh
var smokeScript string

//go:embed scripts/replica-logs.sh
var replicaLogsScript string

const smokeAttempts = 30

// SmokeArgs is what the Smoke component uses.
type SmokeArgs struct {
	Stack  string // the replicas whose logs a failure prints
	OnHost OnHost
	URL    string // healthUrl
	// Probe says where the check runs; see probeFrom.
	Probe SmokeProbe
	// Triggers re-run the check (the revision, the nginx configuration and container).
	Triggers pulumi.Array
	// After is what must be live first (the nginx configuration).
	After []pulumi.Resource
}

// SmokeProbe is where the smoke check reaches nginx from.
type SmokeProbe struct {
	// InNginx: the published port is not reachable from the machine running Pulumi (a remote
	// host that binds nginx to its loopback), so the check runs inside the nginx container.
	InNginx        bool
	NginxContainer string
	PublicHost     string // the Host header (and URL host)
	// Address is where the URL's host is reached from here, when it differs from PublicHost
	// (curl --connect-to).
	Address  string
	Insecure bool // TLS on: the check proves the stack answers; certbot owns validity
}

// Smoke is the smoke phase: it polls healthUrl (/readyz through nginx, so nginx, a replica and
// Postgres all answer) and fails `pulumi up` when it does not get a 200 within about a minute,
// printing the URL, the last status and the replicas' last log lines. It runs after the nginx
// configuration was installed, on every app or proxy change.
type Smoke struct {
	pulumi.ResourceState
	Check *local.Command
}

// NewSmoke registers the Smoke component name (notes-<stack>-smoke).
func NewSmoke(ctx *pulumi.Context, name string, args *SmokeArgs, opts ...pulumi.ResourceOption) (*Smoke, error) {
	s := &Smoke{}
	if err := ctx.RegisterComponentResource("notes:infra:Smoke", name, s, opts...); err != nil {
		return nil, err
	}
	cmd, env := smokeCommand(args)
	c, err := local.NewCommand(ctx, name+"-check", &local.CommandArgs{
		Create:      pulumi.String(cmd),
		Environment: env,
		Triggers:    args.Triggers,
		Logging:     local.LoggingStdoutAndStderr,
	}, pulumi.Parent(s), pulumi.DependsOn(args.After))
	if err != nil {
		return nil, err
	}
	s.Check = c
	if err := ctx.RegisterResourceOutputs(s, pulumi.Map{}); err != nil {
		return nil, err
	}
	return s, nil
}

// smokeCommand polls the health URL with scripts/smoke.sh, with curl from here or from inside
// the nginx container; when the check fails, the replicas' logs are
// printed (scripts/replica-logs.sh on the host) and the command fails.
func smokeCommand(args *SmokeArgs) (string, pulumi.StringMap) {
	attempts := strconv.Itoa(smokeAttempts)
	var probe string
	if args.Probe.InNginx {
		probe, _ = args.OnHost.Docker("exec", args.Probe.NginxContainer, "sh", "-c", smokeScript, "sh",
			"nginx", bracketIPv6(args.Probe.PublicHost), attempts)
	} else {
		argv := []string{"sh", "-c", smokeScript, "sh", "curl", args.URL, attempts}
		if args.Probe.Insecure {
			argv = append(argv, "--insecure")
		}
		if a := args.Probe.Address; a != "" && a != args.Probe.PublicHost {
			argv = append(argv, "--connect-to", fmt.Sprintf("%s::%s:", bracketIPv6(args.Probe.PublicHost), bracketIPv6(a)))
		}
		probe = shellJoin(argv)
	}
	logs, env := args.OnHost.Script(replicaLogsScript, args.Stack)
	return probe + " || { " + logs + "; exit 1; }", env
}

// probeFrom is where the Docker host's published ports are reached from the machine running
// Pulumi, and whether that works at all (a remote host that binds nginx to its loopback is not
// reachable from here).
func probeFrom(host DockerHost, bindAddress string) (string, bool) {
	bind := net.ParseIP(bindAddress)
	remote, isRemote := host.RemoteHost()
	if !isRemote {
		if bind != nil && !bind.IsUnspecified() {
			return bindAddress, true
		}
		return "127.0.0.1", true
	}
	if bind != nil && bind.IsLoopback() && !isLoopbackHost(remote) {
		return "", false
	}
	if bind != nil && !bind.IsUnspecified() && !bind.IsLoopback() {
		return bindAddress, true
	}
	return remote, true
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// bracketIPv6 puts an IPv6 literal in brackets (URL authority, Host header, curl --connect-to).
func bracketIPv6(h string) string {
	if strings.Contains(h, ":") && !strings.HasPrefix(h, "[") {
		return "[" + h + "]"
	}
	return h
}
