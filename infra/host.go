package main

import (
	_ "embed"
	"fmt"
	"strings"

	"github.com/pulumi/pulumi-command/sdk/go/command/local"
	"github.com/pulumi/pulumi-docker/sdk/v4/go/docker"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

//go:embed scripts/bootstrap.sh
var bootstrapScript string

// Host is the Docker host: the optional SSH bootstrap (install Docker) and the explicit docker
// provider every other resource uses.
type Host struct {
	pulumi.ResourceState

	Provider  *docker.Provider
	Bootstrap *local.Command // nil unless bootstrap=true
	// Ready is what resources that run commands on the host (not through the provider) depend on.
	Ready []pulumi.Resource
	cfg   *Config
}

func NewHost(ctx *pulumi.Context, cfg *Config, opts ...pulumi.ResourceOption) (*Host, error) {
	name := cfg.Name("host")
	h := &Host{cfg: cfg}
	if err := ctx.RegisterComponentResource("notes:infra:Host", name, h, opts...); err != nil {
		return nil, err
	}
	var provDeps []pulumi.Resource
	if cfg.Bootstrap {
		t, _ := ParseSSH(cfg.DockerHost) // validated
		b, err := local.NewCommand(ctx, name+"-bootstrap", &local.CommandArgs{
			// Reads the script from stdin: installs docker.io only when `docker` is missing.
			Create:   pulumi.String(h.sshCommand(t, "sh -s")),
			Stdin:    pulumi.String(bootstrapScript),
			Triggers: pulumi.Array{pulumi.String(cfg.DockerHost), pulumi.String(sha256Hex([]byte(bootstrapScript)))},
			Logging:  local.LoggingStdoutAndStderr,
		}, pulumi.Parent(h))
		if err != nil {
			return nil, err
		}
		h.Bootstrap = b
		provDeps = append(provDeps, b)
	}
	h.Ready = provDeps

	// No secret in the provider config: it is stored in clear in the state.
	prov, err := docker.NewProvider(ctx, name+"-docker", &docker.ProviderArgs{
		Host:    pulumi.String(cfg.DockerHost),
		SshOpts: pulumi.ToStringArray(cfg.providerSSHOpts()),
	}, pulumi.Parent(h), pulumi.DependsOn(provDeps))
	if err != nil {
		return nil, err
	}
	h.Provider = prov
	if err := ctx.RegisterResourceOutputs(h, pulumi.Map{
		"dockerHost": pulumi.String(cfg.DockerHost),
	}); err != nil {
		return nil, err
	}
	return h, nil
}

// providerSSHOpts are the ssh options for the docker provider (which runs
// `ssh ... docker system dial-stdio`).
func (c *Config) providerSSHOpts() []string {
	if !strings.HasPrefix(c.DockerHost, "ssh://") {
		return nil
	}
	return append([]string{"-o", "BatchMode=yes"}, c.SSHOpts...)
}

// sshCommand is a local shell command line that runs remote (a shell command line) on the
// ssh:// host with the configured options. User, port and host are passed as `-l user -p port
// -- host`, so none of them can be read as an ssh option (ParseSSH also refuses a user or host
// starting with '-').
func (h *Host) sshCommand(t SSHTarget, remote string) string {
	args := []string{"ssh"}
	args = append(args, h.cfg.providerSSHOpts()...)
	if t.User != "" {
		args = append(args, "-l", t.User)
	}
	args = append(args, "-p", fmt.Sprint(t.Port), "--", t.Host, remote)
	return shellJoin(args)
}

// DockerCommand returns a local shell command line that runs `docker <args>` against the
// stack's Docker host, and the environment it needs (see onHost).
func (h *Host) DockerCommand(args ...string) (string, pulumi.StringMap) {
	return h.onHost(shellJoin(append([]string{"docker"}, args...)))
}

// ShellCommand returns a local shell command line that runs script with sh where the stack's
// docker CLI reaches its daemon, and the environment it needs (see onHost).
func (h *Host) ShellCommand(script string) (string, pulumi.StringMap) {
	return h.onHost(shellJoin([]string{"sh", "-c", script}))
}

// onHost runs the command line cmd (which calls the docker CLI) against the stack's Docker
// host. For unix:// and tcp:// hosts it runs locally with DOCKER_HOST; for ssh:// hosts it runs
// on the host over ssh with notes:sshOpts (the docker CLI's own ssh helper cannot take extra
// ssh options).
func (h *Host) onHost(cmd string) (string, pulumi.StringMap) {
	if strings.HasPrefix(h.cfg.DockerHost, "ssh://") {
		t, _ := ParseSSH(h.cfg.DockerHost)
		return h.sshCommand(t, cmd), pulumi.StringMap{}
	}
	return cmd, pulumi.StringMap{"DOCKER_HOST": pulumi.String(h.cfg.DockerHost)}
}

// ImageRef is the tag of the service image: imageName:appVersion, under pushRegistry if set.
func (c *Config) ImageRef() string {
	ref := c.ImageName + ":" + c.AppVersion
	if c.PushRegistry != "" {
		ref = strings.TrimSuffix(c.PushRegistry, "/") + "/" + ref
	}
	return ref
}

// BuildCommand is the shell command that builds the service image from the root Dockerfile on
// the stack's Docker daemon (legacy builder; the Pulumi command runs it in the repository root)
// and prints the image id as its last line of stdout; build logs go to stderr. With pushRegistry
// the image is pushed with the docker CLI's credentials (`docker login` beforehand).
//
// The context is a tar archive of exactly ContextFiles (what ContextDigest hashes), piped to
// `docker build -` on every host type: locally with DOCKER_HOST for unix:// and tcp://, over ssh
// for ssh://. (For an archive the daemon does not apply .dockerignore; it only drops the
// Dockerfile and .dockerignore. So the archive itself must leave out everything else.)
func (h *Host) BuildCommand(cfg *Config, ref string) (string, pulumi.StringMap) {
	root, err := repoRoot()
	var files []string
	if err == nil {
		files, err = ContextFiles(root)
	}
	if err != nil {
		return "echo " + shellQuote("notes: listing the build context: "+err.Error()) + " >&2; exit 1", pulumi.StringMap{}
	}
	return h.buildCommand(cfg, ref, files)
}

// contextArchiveCommand writes a gzip'ed tar of files (relative to the working directory) to
// stdout. The names are given as ./path after --, so none can be taken for a tar option, and
// --no-recursion keeps tar to the list.
func contextArchiveCommand(files []string) string {
	args := []string{"tar", "-czf", "-", "--no-recursion", "--"}
	for _, f := range files {
		args = append(args, "./"+f)
	}
	return shellJoin(args)
}

func (h *Host) buildCommand(cfg *Config, ref string, files []string) (string, pulumi.StringMap) {
	build := []string{"docker", "build", "--iidfile", "$IIDFILE",
		"--build-arg", "GO_IMAGE=" + cfg.GoImage,
		"--build-arg", "APP_VERSION=" + cfg.AppVersion,
		"-t", ref, "-"}
	quoted := strings.Replace(shellJoin(build), "'$IIDFILE'", `"$f"`, 1)
	push := ""
	if cfg.PushRegistry != "" {
		push = " && docker push " + shellQuote(ref) + " >&2"
	}
	archive := contextArchiveCommand(files)
	env := pulumi.StringMap{"DOCKER_BUILDKIT": pulumi.String("0")}
	if strings.HasPrefix(cfg.DockerHost, "ssh://") {
		t, _ := ParseSSH(cfg.DockerHost)
		remote := `f=$(mktemp) && DOCKER_BUILDKIT=0 ` + quoted + ` >&2` + push + ` && cat "$f"; rc=$?; rm -f "$f"; exit $rc`
		return archive + " | " + h.sshCommand(t, remote), env
	}
	env["DOCKER_HOST"] = pulumi.String(cfg.DockerHost)
	return `f=$(mktemp) && ` + archive + ` | ` + quoted + ` >&2` + push + ` && cat "$f"; rc=$?; rm -f "$f"; exit $rc`, env
}

// parseImageID returns the image id printed last by BuildCommand.
func parseImageID(out string) (string, error) {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	id := strings.TrimSpace(lines[len(lines)-1])
	if !strings.HasPrefix(id, "sha256:") || len(id) != len("sha256:")+64 {
		return "", fmt.Errorf("image build printed %q, not an image id", id)
	}
	return id, nil
}
