package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/pulumi/pulumi-command/sdk/go/command/local"
	"github.com/pulumi/pulumi-docker/sdk/v4/go/docker"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// App is the service: the image built from the root Dockerfile on the target daemon, the
// one-shot migration container and the replicas.
//
// Zero-downtime mechanics: every replica input that can change (image, settings, secrets) feeds
// the triggers of the Revision command, whose output (a random id) is part of the replica and
// migration container names. A change therefore gives new names, so Pulumi's default
// create-before-delete replacement can start the new replicas next to the old ones (no fixed
// names, no host ports), waits for them to be healthy, lets the Proxy rewrite the upstream list
// and reload, and Retire stops the old replicas once nginx no longer routes to them.
type App struct {
	pulumi.ResourceState

	Image     *local.Command // docker build on the target daemon; stdout ends with the image id
	Revision  *local.Command
	Migration *docker.Container
	// Ready is every replica: what the nginx configuration waits for.
	Ready []pulumi.Resource

	ImageID      pulumi.StringOutput
	RevisionID   pulumi.StringOutput
	ReplicaNames pulumi.StringArrayOutput
}

// replicaSpec is every non-secret replica setting; its hash is one of the revision triggers.
// The replica count is not part of it: scaling adds or removes replicas without rolling the
// others.
type replicaSpec struct {
	LogLevel        string
	DrainDelay      string
	ShutdownTimeout string
	MemoryMB        int
	CPUs            string
	StopGrace       int
	Network         string
	Version         int // bump when the container definition below changes
}

// AppArgs is what the App component uses.
type AppArgs struct {
	Stack    string
	Provider *docker.Provider
	OnHost   OnHost
	// HostReady is what the image build (a command on the host) waits for.
	HostReady []pulumi.Resource

	// Build phase.
	Context    BuildContext
	ImageRef   string
	GoImage    string
	AppVersion string
	Push       bool   // also push ImageRef (pushRegistry set)
	DockerHost string // a build on another daemon is a new build

	// Replicas.
	Replicas        int
	LogLevel        string
	DrainDelay      time.Duration
	ShutdownTimeout time.Duration
	MemoryMB        int
	CPUs            string // as the docker provider reads it back (Config.DockerCPUs)
	StopGrace       int    // seconds between SIGTERM and SIGKILL
	Network         pulumi.StringOutput
	NetworkName     string // Network's name, known before it exists (part of the replica spec)

	// Database.
	OwnerURL      pulumi.StringOutput // secret; migrations
	AppURL        pulumi.StringOutput // secret; replicas
	AppPassword   pulumi.StringOutput // secret; the migration sets it on AppRole
	DatabaseReady []pulumi.Resource   // what the migration waits for (empty: external database)
}

// NewApp registers the App component name (notes-<stack>-app): the build, migrate and roll-out
// phases of a deploy.
func NewApp(ctx *pulumi.Context, name string, args *AppArgs, opts ...pulumi.ResourceOption) (*App, error) {
	a := &App{}
	if err := ctx.RegisterComponentResource("notes:infra:App", name, a, opts...); err != nil {
		return nil, err
	}
	prov := pulumi.Provider(args.Provider)

	// Phase build: the image, built on the target daemon from exactly the hashed context.
	buildCmd, buildEnv := buildCommand(args.OnHost, args.Context.Files, args.ImageRef, args.GoImage, args.AppVersion, args.Push)
	img, err := local.NewCommand(ctx, name+"-image", &local.CommandArgs{
		Create:      pulumi.String(buildCmd),
		Environment: buildEnv,
		Dir:         pulumi.String(args.Context.Dir),
		// A new context, base image or version rebuilds the image; a rebuild gives a new id.
		Triggers: pulumi.Array{
			pulumi.String(args.Context.Digest),
			pulumi.String(args.GoImage),
			pulumi.String(args.AppVersion),
			pulumi.String(args.ImageRef),
			pulumi.String(args.DockerHost),
		},
		Logging: local.LoggingStderr,
	}, pulumi.Parent(a), pulumi.DependsOn(args.HostReady))
	if err != nil {
		return nil, err
	}
	a.Image = img
	// The image id (sha256:...), unique per build: containers reference it, so a new build
	// replaces them.
	a.ImageID = img.Stdout.ApplyT(func(out string) (string, error) {
		return parseImageID(out)
	}).(pulumi.StringOutput)

	spec := replicaSpec{
		LogLevel:   args.LogLevel,
		DrainDelay: args.DrainDelay.String(), ShutdownTimeout: args.ShutdownTimeout.String(),
		MemoryMB: args.MemoryMB, CPUs: args.CPUs, StopGrace: args.StopGrace,
		Network: args.NetworkName, Version: 1,
	}
	specJSON, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}

	// The revision: a random id, regenerated only when one of its triggers changes. Secrets in
	// the triggers are stored encrypted (the Triggers array is secret as a whole).
	rev, err := local.NewCommand(ctx, name+"-revision", &local.CommandArgs{
		Create: pulumi.String(`od -An -N4 -tx1 /dev/urandom | tr -d ' \n'`),
		Triggers: pulumi.Array{
			a.ImageID,
			pulumi.String(sha256Hex(specJSON)),
			args.OwnerURL,
			args.AppURL,
		},
	}, pulumi.Parent(a))
	if err != nil {
		return nil, err
	}
	a.Revision = rev
	a.RevisionID = pulumi.Unsecret(rev.Stdout.ApplyT(func(s string) (string, error) {
		s = strings.TrimSpace(s)
		if len(s) != 8 {
			return "", fmt.Errorf("revision id %q is not 8 hex characters", s)
		}
		return s, nil
	})).(pulumi.StringOutput)

	network := docker.ContainerNetworksAdvancedArray{docker.ContainerNetworksAdvancedArgs{Name: args.Network}}
	hardening := func(c *docker.ContainerArgs) *docker.ContainerArgs {
		c.User = pulumi.String("65532:65532")
		c.ReadOnly = pulumi.Bool(true)
		c.Tmpfs = pulumi.StringMap{"/tmp": pulumi.String("rw,noexec,nosuid,nodev,size=16m")}
		c.Capabilities = docker.ContainerCapabilitiesArgs{Drops: pulumi.ToStringArray([]string{"ALL"})}
		c.SecurityOpts = pulumi.ToStringArray([]string{"no-new-privileges"})
		c.Memory = pulumi.Int(args.MemoryMB)
		c.MemorySwap = pulumi.Int(args.MemoryMB)
		c.Cpus = pulumi.String(args.CPUs)
		c.LogDriver = pulumi.String("json-file")
		c.LogOpts = logOpts()
		c.NetworksAdvanced = network
		return c
	}

	// Phase migrate: `notes migrate up` as the owner; it also creates/rotates the notes_app role.
	// attach=true makes the provider wait for the exit; mustRun=false keeps the exited container
	// (so the next `pulumi up` sees no change); the exit code is checked below.
	mig, err := docker.NewContainer(ctx, name+"-migrate", hardening(&docker.ContainerArgs{
		Name:    pulumi.Sprintf("%s-%s", objectName(args.Stack, "migrate"), a.RevisionID),
		Image:   a.ImageID,
		Command: pulumi.ToStringArray([]string{"migrate", "up"}),
		Envs: pulumi.StringArray{
			pulumi.Sprintf("DATABASE_URL=%s", args.OwnerURL),
			pulumi.String("APP_DB_ROLE=" + AppRole),
			pulumi.Sprintf("APP_DB_PASSWORD=%s", args.AppPassword),
			pulumi.String("LOG_LEVEL=" + args.LogLevel),
			pulumi.String("LOG_FORMAT=json"),
		},
		Attach:  pulumi.Bool(true),
		Logs:    pulumi.Bool(true),
		MustRun: pulumi.Bool(false),
		Restart: pulumi.String("no"),
		Labels:  containerLabels(args.Stack, "migrate", "org.opencontainers.image.version", args.AppVersion),
	}), pulumi.Parent(a), prov, pulumi.DependsOn(args.DatabaseReady), createBeforeDelete)
	if err != nil {
		return nil, err
	}
	a.Migration = mig
	// Fails the update (before any replica is created or replaced) unless the migration exited 0.
	migrated := pulumi.All(mig.ExitCode, mig.ContainerLogs, mig.Name).ApplyT(func(v []any) (string, error) {
		code, name := v[0].(int), v[2].(string)
		if code != 0 {
			logs := ""
			if l, ok := v[1].(string); ok {
				logs = tail(l, 30)
			}
			return "", fmt.Errorf("phase migrate: migration container %s exited with status %d; replicas were not changed.\n%s", name, code, logs)
		}
		if err := ctx.Log.Info(fmt.Sprintf("phase migrate: %s exited 0", name), &pulumi.LogArgs{Resource: mig}); err != nil {
			return "", err
		}
		return "ok", nil
	}).(pulumi.StringOutput)

	// Phase roll out (first half): the new replicas, next to the old ones. The Proxy then routes
	// to them and Retire stops the old ones.
	var names pulumi.StringArray
	for i := 1; i <= args.Replicas; i++ {
		r, err := docker.NewContainer(ctx, fmt.Sprintf("%s-%d", name, i), hardening(&docker.ContainerArgs{
			Name:    pulumi.Sprintf("%s-%d-%s", name, i, a.RevisionID),
			Image:   a.ImageID,
			Command: pulumi.ToStringArray([]string{"serve"}),
			Envs: pulumi.StringArray{
				pulumi.Sprintf("DATABASE_URL=%s", args.AppURL),
				pulumi.String("HTTP_ADDR=:8080"),
				pulumi.String("LOG_LEVEL=" + args.LogLevel),
				pulumi.String("LOG_FORMAT=json"),
				pulumi.String("DRAIN_DELAY=" + args.DrainDelay.String()),
				pulumi.String("SHUTDOWN_TIMEOUT=" + args.ShutdownTimeout.String()),
			},
			// Ready (DB reachable), not only alive: Wait returns once a new replica can serve,
			// before nginx sends it traffic.
			Healthcheck: docker.ContainerHealthcheckArgs{
				Tests:       pulumi.ToStringArray([]string{"CMD", "/notes", "healthcheck", "--url", "http://127.0.0.1:8080/readyz"}),
				Interval:    pulumi.String("3s"),
				Timeout:     pulumi.String("2s"),
				Retries:     pulumi.Int(3),
				StartPeriod: pulumi.String("10s"),
			},
			Wait:                pulumi.Bool(true),
			WaitTimeout:         pulumi.Int(120),
			Restart:             pulumi.String("unless-stopped"),
			StopSignal:          pulumi.String("SIGTERM"),
			StopTimeout:         pulumi.Int(args.StopGrace),
			DestroyGraceSeconds: pulumi.Int(args.StopGrace),
			Labels: append(containerLabels(args.Stack, "app", "org.opencontainers.image.version", args.AppVersion),
				docker.ContainerLabelArgs{Label: pulumi.String("com.notes-stack.migration"), Value: migrated}),
		}), pulumi.Parent(a), prov, pulumi.DependsOn([]pulumi.Resource{mig}), createBeforeDelete,
			// Retire (retire.go) stops old replicas once Nginx no longer routes to them.
			pulumi.RetainOnDelete(true))
		if err != nil {
			return nil, err
		}
		a.Ready = append(a.Ready, r)
		names = append(names, r.Name)
	}
	a.ReplicaNames = names.ToStringArrayOutput()
	if err := ctx.RegisterResourceOutputs(a, pulumi.Map{
		"imageId":      a.ImageID,
		"imageName":    pulumi.String(args.ImageRef),
		"revision":     a.RevisionID,
		"replicaNames": a.ReplicaNames,
		"migration":    mig.Name,
	}); err != nil {
		return nil, err
	}
	return a, nil
}

// createBeforeDelete overrides the Terraform bridge's default for explicitly named resources:
// without it docker containers are replaced delete-before-create (the old replica is stopped
// before the new one exists, and nginx answers 502 in between). Our names change with every
// revision, so create-before-delete cannot conflict.
var createBeforeDelete = pulumi.DeleteBeforeReplace(false)

func tail(s string, n int) string {
	// Docker's log stream has binary frame headers; keep printable text only.
	s = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' || (r >= ' ' && r != 0x7f && r != 0xfffd) {
			return r
		}
		return -1
	}, s)
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
