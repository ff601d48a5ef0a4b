package main

import (
	_ "embed"
	"fmt"
	"maps"
	"net"
	"strconv"
	"strings"

	"github.com/pulumi/pulumi-command/sdk/go/command/local"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

//go:embed scripts/smoke.sh
var smokeScript string

//go:embed scripts/prove.sh
var proveScript string

//go:embed scripts/replica-logs.sh
var replicaLogsScript string

const smokeAttempts = 30

// smokeTrustEnv carries SmokeProbe.Trust to scripts/smoke.sh.
const smokeTrustEnv = "NOTES_SMOKE_CA"

// SmokeArgs is what the Smoke component uses.
type SmokeArgs struct {
	Stack  string // the replicas whose logs a failure prints
	OnHost OnHost
	URL    string // healthUrl
	// Probe says where the check runs; see probeFrom.
	Probe SmokeProbe
	// ThroughNginx asks nginx for Revision (notes:smokeCheck); without it only the host-side
	// half of the proof runs.
	ThroughNginx bool
	// Revision is the new replicas' revision; MigrationStatus the migration's exit status;
	// Replicas the new replicas' names.
	Revision        pulumi.StringOutput
	MigrationStatus pulumi.StringOutput
	Replicas        pulumi.StringArrayOutput
	// Triggers re-run the check (besides the above: the nginx configuration and container).
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
	Address string
	// Trust is PEM certificates curl also accepts when the default trust store does not verify
	// nginx's certificate (the tls=acme placeholder and a private ACME CA, the tls=provided
	// chain); nil with TLS off. Nothing is ever --insecure.
	Trust pulumi.StringInput
}

// Smoke is the smoke phase, the proof that the new version serves; Retire waits for it, so
// nothing is retired before it passes. One command: scripts/prove.sh on the host (the migration
// of this revision exited 0, every new replica is healthy in docker inspect and of this
// revision), then scripts/smoke.sh polls /readyz through nginx until a response carries
// X-Notes-Revision = the new revision, within about a minute; a failure prints the replicas'
// last log lines. It runs on every revision, replica list, nginx configuration or container
// change. A replica that failed its health wait on an earlier `pulumi up` is still in the
// state; this check refuses it again on the next one, so its old peers are never retired.
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
	cmd := pulumi.All(args.Revision, args.MigrationStatus, args.Replicas).ApplyT(func(v []any) string {
		cmd, _ := smokeCommand(args, v[0].(string), v[1].(string), v[2].([]string))
		return cmd
	}).(pulumi.StringOutput)
	_, env := smokeCommand(args, "", "", nil)
	triggers := append(pulumi.Array{args.Revision, args.Replicas}, args.Triggers...)
	c, err := local.NewCommand(ctx, name+"-check", &local.CommandArgs{
		Create:      cmd,
		Environment: env,
		Triggers:    triggers,
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

// smokeCommand is the proof for revision: scripts/prove.sh on the host, then (ThroughNginx)
// scripts/smoke.sh with curl from here or from inside the nginx container; when either fails, the
// replicas' logs are printed (scripts/replica-logs.sh on the host) and the command fails.
func smokeCommand(args *SmokeArgs, revision, migrationStatus string, replicas []string) (string, pulumi.StringMap) {
	attempts := strconv.Itoa(smokeAttempts)
	check, env := args.OnHost.Script(proveScript, append([]string{revision, migrationStatus, attempts}, replicas...)...)
	if args.ThroughNginx {
		var probe string
		if args.Probe.InNginx {
			probe, _ = args.OnHost.Docker("exec", args.Probe.NginxContainer, "sh", "-c", smokeScript, "sh",
				"nginx", bracketIPv6(args.Probe.PublicHost), attempts, revision)
		} else {
			argv := []string{"sh", "-c", smokeScript, "sh", "curl", args.URL, attempts, revision}
			if a := args.Probe.Address; a != "" && a != args.Probe.PublicHost {
				argv = append(argv, "--connect-to", fmt.Sprintf("%s::%s:", bracketIPv6(args.Probe.PublicHost), bracketIPv6(a)))
			}
			probe = shellJoin(argv)
		}
		check = "{ " + check + " && " + probe + "; }"
	}
	if args.Probe.Trust != nil {
		env = withSmokeTrust(env, args.Probe.Trust)
	}
	logs, _ := args.OnHost.Script(replicaLogsScript, args.Stack)
	return check + " || { " + logs + "; exit 1; }", env
}

// withSmokeTrust is env plus the certificates scripts/smoke.sh trusts besides the public CAs.
func withSmokeTrust(env pulumi.StringMap, trust pulumi.StringInput) pulumi.StringMap {
	out := pulumi.StringMap{smokeTrustEnv: trust}
	maps.Copy(out, env)
	return out
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
