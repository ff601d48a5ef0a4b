package main

import (
	_ "embed"
	"fmt"

	"github.com/pulumi/pulumi-command/sdk/go/command/local"
	"github.com/pulumi/pulumi-docker/sdk/v4/go/docker"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

//go:embed scripts/bootstrap.sh
var bootstrapScript string

// HostArgs is what the Host component uses.
type HostArgs struct {
	DockerHost DockerHost
	SSHOpts    []string  // extra ssh arguments (ssh:// only)
	Bootstrap  bool      // install Docker over ssh first (ssh:// only)
	TLS        DockerTLS // client TLS for a tcp:// daemon
	// After is what must finish before anything reaches the host (the engine guard).
	After []pulumi.Resource
}

// Host is the Docker host: the optional SSH bootstrap (install Docker) and the explicit docker
// provider every other resource uses.
type Host struct {
	pulumi.ResourceState

	Provider *docker.Provider
	// OnHost runs the program's own commands on the host (see OnHost).
	OnHost OnHost
	// Ready is what resources that run commands on the host (not through the provider) depend
	// on: HostArgs.After and the bootstrap when there is one.
	Ready []pulumi.Resource
}

// NewHost registers the Host component name (notes-<stack>-host).
func NewHost(ctx *pulumi.Context, name string, args *HostArgs, opts ...pulumi.ResourceOption) (*Host, error) {
	h := &Host{OnHost: NewOnHost(args.DockerHost, args.SSHOpts).WithTLS(args.TLS), Ready: args.After}
	if err := ctx.RegisterComponentResource("notes:infra:Host", name, h, opts...); err != nil {
		return nil, err
	}
	if args.Bootstrap {
		// Reads the script from stdin: installs docker.io only when `docker` is missing.
		create, env := h.OnHost.Command("sh", "-s")
		cmdArgs := &local.CommandArgs{
			Create:   pulumi.String(create),
			Stdin:    pulumi.String(bootstrapScript),
			Triggers: pulumi.Array{pulumi.String(args.DockerHost.String()), pulumi.String(sha256Hex([]byte(bootstrapScript)))},
			Logging:  local.LoggingStdoutAndStderr,
		}
		if len(env) > 0 { // never for ssh://, the only host bootstrap is valid for
			cmdArgs.Environment = env
		}
		b, err := local.NewCommand(ctx, name+"-bootstrap", cmdArgs, pulumi.Parent(h), pulumi.DependsOn(args.After))
		if err != nil {
			return nil, err
		}
		h.Ready = append(h.Ready, b)
	}

	provArgs := &docker.ProviderArgs{
		Host:    pulumi.String(args.DockerHost.String()),
		SshOpts: pulumi.ToStringArray(h.OnHost.ProviderSSHOpts()),
	}
	if args.TLS.Set {
		// The only secrets of the provider config; they stay Pulumi secrets (encrypted in the
		// state like any secret input).
		provArgs.CaMaterial, provArgs.CertMaterial, provArgs.KeyMaterial = args.TLS.CA, args.TLS.Cert, args.TLS.Key
	}
	prov, err := docker.NewProvider(ctx, name+"-docker", provArgs, pulumi.Parent(h), pulumi.DependsOn(h.Ready))
	if err != nil {
		return nil, err
	}
	h.Provider = prov
	if err := ctx.RegisterResourceOutputs(h, pulumi.Map{
		"dockerHost": pulumi.String(args.DockerHost.String()),
	}); err != nil {
		return nil, err
	}
	return h, nil
}

// OnHost is the one path for every command the program runs against the stack's Docker host
// (image build, nginx configuration, database password, smoke check, retire, logs, bootstrap).
// For unix:// and tcp:// hosts the command runs here with DOCKER_HOST; for ssh:// hosts it runs
// on the host over ssh with notes:sshOpts (the docker CLI's own ssh helper cannot take extra ssh
// options). Commands are argv lists, quoted once here; scripts get their parameters as
// arguments (Script), never spliced into their text.
type OnHost struct {
	host    DockerHost
	sshOpts []string
	tls     DockerTLS
}

// NewOnHost returns the command runner for host with the extra ssh options (ssh:// only).
func NewOnHost(host DockerHost, sshOpts []string) OnHost {
	return OnHost{host: host, sshOpts: sshOpts}
}

// WithTLS returns o with the client TLS material for a tcp:// daemon.
func (o OnHost) WithTLS(t DockerTLS) OnHost {
	o.tls = t
	return o
}

// Command returns the local shell command line that runs argv on the host, and the environment
// it needs.
func (o OnHost) Command(argv ...string) (string, pulumi.StringMap) {
	return o.Piped("", argv...)
}

// Piped is Command with the output of local, a command line run here, piped into argv's
// standard input (for ssh:// hosts, over the connection). "" pipes nothing.
func (o OnHost) Piped(local string, argv ...string) (string, pulumi.StringMap) {
	cmd := shellJoin(argv)
	if o.host.IsSSH() {
		cmd = o.sshCommand(cmd)
	}
	if local != "" {
		cmd = local + " | " + cmd
	}
	if o.host.IsSSH() {
		return cmd, pulumi.StringMap{}
	}
	env := pulumi.StringMap{"DOCKER_HOST": pulumi.String(o.host.String())}
	if !o.tls.Set {
		return cmd, env
	}
	// The docker CLI reads TLS material only from files: write the secrets (from the command's
	// environment, which Pulumi keeps secret) into a private temporary directory for this one
	// command, and remove it afterwards. The prelude goes in front of the whole line, pipeline
	// included: in front of a pipeline's second part it would run in that part's subshell.
	env["NOTES_DOCKER_TLS_CA"], env["NOTES_DOCKER_TLS_CERT"], env["NOTES_DOCKER_TLS_KEY"] = o.tls.CA, o.tls.Cert, o.tls.Key
	return dockerTLSPrelude + cmd, env
}

// ProcessEnv is the environment Command's line needs when the program runs it itself, as a
// process rather than a command resource (which gets Command's map as its inputs).
func (o OnHost) ProcessEnv() []string {
	if o.host.IsSSH() {
		return nil
	}
	env := []string{"DOCKER_HOST=" + o.host.String()}
	if o.tls.Set {
		env = append(env, "NOTES_DOCKER_TLS_CA="+o.tls.plain[0], "NOTES_DOCKER_TLS_CERT="+o.tls.plain[1],
			"NOTES_DOCKER_TLS_KEY="+o.tls.plain[2])
	}
	return env
}

// dockerTLSPrelude sets DOCKER_TLS_VERIFY and DOCKER_CERT_PATH for the command after it. Command
// lines are composed of several (a check, then the logs when it fails): the first prelude of the
// shell writes the directory and sets the one EXIT trap that removes it, later ones reuse it (a
// second trap would replace the first, and the first directory would stay behind, key and all).
const dockerTLSPrelude = `if [ -z "${notes_tls_dir:-}" ]; then ` +
	`notes_tls_dir=$(umask 077 && mktemp -d) || exit 1; trap 'rm -rf "$notes_tls_dir"' EXIT; ` +
	`printf '%s\n' "$NOTES_DOCKER_TLS_CA" >"$notes_tls_dir/ca.pem" && ` +
	`printf '%s\n' "$NOTES_DOCKER_TLS_CERT" >"$notes_tls_dir/cert.pem" && ` +
	`printf '%s\n' "$NOTES_DOCKER_TLS_KEY" >"$notes_tls_dir/key.pem" || exit 1; ` +
	`unset NOTES_DOCKER_TLS_CA NOTES_DOCKER_TLS_CERT NOTES_DOCKER_TLS_KEY; fi; ` +
	`export DOCKER_CERT_PATH="$notes_tls_dir" DOCKER_TLS_VERIFY=1; `

// Docker runs `docker args...` on the host.
func (o OnHost) Docker(args ...string) (string, pulumi.StringMap) {
	return o.Command(append([]string{"docker"}, args...)...)
}

// Script runs script with sh on the host; args become $1, $2, ...
func (o OnHost) Script(script string, args ...string) (string, pulumi.StringMap) {
	return o.Command(append([]string{"sh", "-c", script, "sh"}, args...)...)
}

// ProviderSSHOpts are the ssh options for the docker provider (which runs
// `ssh ... docker system dial-stdio`) and for our own ssh commands.
func (o OnHost) ProviderSSHOpts() []string {
	if !o.host.IsSSH() {
		return nil
	}
	return append([]string{"-o", "BatchMode=yes"}, o.sshOpts...)
}

// sshCommand is a local shell command line that runs remote (a shell command line) on the
// ssh:// host. User, port and host are passed as `-l user -p port -- host`, so none of them can
// be read as an ssh option (ParseDockerHost also refuses a user or host starting with '-').
func (o OnHost) sshCommand(remote string) string {
	args := []string{"ssh"}
	args = append(args, o.ProviderSSHOpts()...)
	if o.host.User != "" {
		args = append(args, "-l", o.host.User)
	}
	args = append(args, "-p", fmt.Sprint(o.host.Port), "--", o.host.Host, remote)
	return shellJoin(args)
}
