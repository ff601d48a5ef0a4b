package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

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
// and reload, and deletes the old replicas at the end of the update.
type App struct {
	pulumi.ResourceState

	Image     *local.Command // docker build on the target daemon; stdout ends with the image id
	ImageRef  string
	Revision  *local.Command
	Migration *docker.Container
	Replicas  []*docker.Container

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

func NewApp(ctx *pulumi.Context, cfg *Config, host *Host, net *Network, db *Database, opts ...pulumi.ResourceOption) (*App, error) {
	name := cfg.Name("app")
	a := &App{}
	if err := ctx.RegisterComponentResource("notes:infra:App", name, a, opts...); err != nil {
		return nil, err
	}
	prov := pulumi.Provider(host.Provider)

	// Build context: the repository root, relative to the working directory (infra/ when run
	// by the Pulumi CLI) so the state does not depend on where the repository is checked out.
	root, err := repoRoot()
	if err != nil {
		return nil, err
	}
	buildDir := root
	if wd, err := os.Getwd(); err == nil {
		if rel, err := filepath.Rel(wd, root); err == nil {
			buildDir = rel
		}
	}
	digest, err := ContextDigest(root)
	if err != nil {
		return nil, fmt.Errorf("hashing the build context %s: %w", root, err)
	}
	imageRef := cfg.ImageRef()
	buildCmd, buildEnv := host.BuildCommand(cfg, imageRef)
	img, err := local.NewCommand(ctx, name+"-image", &local.CommandArgs{
		Create:      pulumi.String(buildCmd),
		Environment: buildEnv,
		Dir:         pulumi.String(buildDir),
		// A new context, base image or version rebuilds the image; a rebuild gives a new id.
		Triggers: pulumi.Array{
			pulumi.String(digest),
			pulumi.String(cfg.GoImage),
			pulumi.String(cfg.AppVersion),
			pulumi.String(imageRef),
			pulumi.String(cfg.DockerHost),
		},
		Logging: local.LoggingStderr,
	}, pulumi.Parent(a), pulumi.DependsOn(host.Ready))
	if err != nil {
		return nil, err
	}
	a.Image = img
	a.ImageRef = imageRef
	// The image id (sha256:...), unique per build: containers reference it, so a new build
	// replaces them.
	a.ImageID = img.Stdout.ApplyT(func(out string) (string, error) {
		return parseImageID(out)
	}).(pulumi.StringOutput)

	spec := replicaSpec{
		LogLevel:   cfg.LogLevel,
		DrainDelay: cfg.DrainDelay.String(), ShutdownTimeout: cfg.ShutdownTimeout.String(),
		MemoryMB: cfg.ServiceMemoryMB, CPUs: cfg.DockerCPUs(), StopGrace: cfg.StopGrace(),
		Network: cfg.Name("net"), Version: 1,
	}
	specJSON, _ := json.Marshal(spec)

	// The revision: a random id, regenerated only when one of its triggers changes. Secrets in
	// the triggers are stored encrypted (the Triggers array is secret as a whole).
	rev, err := local.NewCommand(ctx, name+"-revision", &local.CommandArgs{
		Create: pulumi.String(`od -An -N4 -tx1 /dev/urandom | tr -d ' \n'`),
		Triggers: pulumi.Array{
			a.ImageID,
			pulumi.String(sha256Hex(specJSON)),
			db.OwnerURL,
			db.AppURL,
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

	network := docker.ContainerNetworksAdvancedArray{docker.ContainerNetworksAdvancedArgs{Name: net.Network.Name}}
	hardening := func(args *docker.ContainerArgs) *docker.ContainerArgs {
		args.User = pulumi.String("65532:65532")
		args.ReadOnly = pulumi.Bool(true)
		args.Tmpfs = pulumi.StringMap{"/tmp": pulumi.String("rw,noexec,nosuid,nodev,size=16m")}
		args.Capabilities = docker.ContainerCapabilitiesArgs{Drops: pulumi.ToStringArray([]string{"ALL"})}
		args.SecurityOpts = pulumi.ToStringArray([]string{"no-new-privileges"})
		args.Memory = pulumi.Int(cfg.ServiceMemoryMB)
		args.MemorySwap = pulumi.Int(cfg.ServiceMemoryMB)
		args.Cpus = pulumi.String(cfg.DockerCPUs())
		args.LogDriver = pulumi.String("json-file")
		args.LogOpts = logOpts()
		args.NetworksAdvanced = network
		return args
	}

	// Migrations: `notes migrate up` as the owner; it also creates/rotates the notes_app role.
	// attach=true makes the provider wait for the exit; mustRun=false keeps the exited container
	// (so the next `pulumi up` sees no change); the exit code is checked below.
	mig, err := docker.NewContainer(ctx, name+"-migrate", hardening(&docker.ContainerArgs{
		Name:    pulumi.Sprintf("%s-%s", cfg.Name("migrate"), a.RevisionID),
		Image:   a.ImageID,
		Command: pulumi.ToStringArray([]string{"migrate", "up"}),
		Envs: pulumi.StringArray{
			pulumi.Sprintf("DATABASE_URL=%s", db.OwnerURL),
			pulumi.String("APP_DB_ROLE=" + AppRole),
			pulumi.Sprintf("APP_DB_PASSWORD=%s", cfg.AppDBPassword),
			pulumi.String("LOG_LEVEL=" + cfg.LogLevel),
			pulumi.String("LOG_FORMAT=json"),
		},
		Attach:  pulumi.Bool(true),
		Logs:    pulumi.Bool(true),
		MustRun: pulumi.Bool(false),
		Restart: pulumi.String("no"),
		Labels:  containerLabels(cfg, "migrate", "org.opencontainers.image.version", cfg.AppVersion),
	}), pulumi.Parent(a), prov, pulumi.DependsOn(depends(db.Container, db.PasswordCmd)), createBeforeDelete)
	if err != nil {
		return nil, err
	}
	a.Migration = mig
	// Fails the update (before any replica is created or replaced) unless the migration exited 0.
	migrated := pulumi.All(mig.ExitCode, mig.ContainerLogs, mig.Name).ApplyT(func(v []any) (string, error) {
		code := v[0].(int)
		if code != 0 {
			logs := ""
			if l, ok := v[1].(string); ok {
				logs = tail(l, 30)
			}
			return "", fmt.Errorf("migration container %s exited with status %d; replicas were not changed.\n%s", v[2].(string), code, logs)
		}
		return "ok", nil
	}).(pulumi.StringOutput)

	var names pulumi.StringArray
	for i := 1; i <= cfg.Replicas; i++ {
		r, err := docker.NewContainer(ctx, fmt.Sprintf("%s-%d", name, i), hardening(&docker.ContainerArgs{
			Name:    pulumi.Sprintf("%s-%s", cfg.Name("app", strconv.Itoa(i)), a.RevisionID),
			Image:   a.ImageID,
			Command: pulumi.ToStringArray([]string{"serve"}),
			Envs: pulumi.StringArray{
				pulumi.Sprintf("DATABASE_URL=%s", db.AppURL),
				pulumi.String("HTTP_ADDR=:8080"),
				pulumi.String("LOG_LEVEL=" + cfg.LogLevel),
				pulumi.String("LOG_FORMAT=json"),
				pulumi.String("DRAIN_DELAY=" + cfg.DrainDelay.String()),
				pulumi.String("SHUTDOWN_TIMEOUT=" + cfg.ShutdownTimeout.String()),
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
			StopTimeout:         pulumi.Int(cfg.StopGrace()),
			DestroyGraceSeconds: pulumi.Int(cfg.StopGrace()),
			Labels: append(containerLabels(cfg, "app", "org.opencontainers.image.version", cfg.AppVersion),
				docker.ContainerLabelArgs{Label: pulumi.String("com.notes-stack.migration"), Value: migrated}),
		}), pulumi.Parent(a), prov, pulumi.DependsOn([]pulumi.Resource{mig}), createBeforeDelete,
			// Retire (retire.go) stops old replicas once Nginx no longer routes to them.
			pulumi.RetainOnDelete(true))
		if err != nil {
			return nil, err
		}
		a.Replicas = append(a.Replicas, r)
		names = append(names, r.Name)
	}
	a.ReplicaNames = names.ToStringArrayOutput()
	if err := ctx.RegisterResourceOutputs(a, pulumi.Map{
		"imageId":      a.ImageID,
		"imageName":    pulumi.String(imageRef),
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

func depends(rs ...pulumi.Resource) []pulumi.Resource {
	var out []pulumi.Resource
	for _, r := range rs {
		if r != nil && !isNilResource(r) {
			out = append(out, r)
		}
	}
	return out
}

func isNilResource(r pulumi.Resource) bool {
	switch v := r.(type) {
	case *docker.Container:
		return v == nil
	case *local.Command:
		return v == nil
	}
	return false
}

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
