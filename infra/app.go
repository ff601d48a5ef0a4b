package main

import (
	_ "embed"
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
// names, no host ports) and waits for them to be healthy. They join the stack's replica alias,
// which nginx resolves at run time, so they take traffic without an nginx change or reload; the
// Smoke proof checks them, and only then Retire takes the old ones out of the alias and stops
// them.
type App struct {
	pulumi.ResourceState

	Image     *local.Command // docker build on the target daemon; stdout ends with the image id
	Revision  *local.Command
	Migration *local.Command // scripts/migrate.sh on the host
	// MigrationName is the (removed) migration container's name; MigrationStatus its exit
	// status, "0" (the command fails otherwise).
	MigrationName   pulumi.StringOutput
	MigrationStatus pulumi.StringOutput
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
	WriteAuth       string
	MemoryMB        int
	CPUs            string
	StopGrace       int
	Linger          string
	Network         string
	DataNetwork     string
	DBMaxConns      int
	Version         int // bump when the container definition below changes
}

// AppArgs is what the App component uses.
type AppArgs struct {
	Stack    string
	Provider *docker.Provider
	// Orphans is the hook that removes a container an interrupted up left under a name this
	// component creates (newOrphanHook); nil for none.
	Orphans *pulumi.ResourceHookBinding
	OnHost  OnHost
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
	DBMaxConns      int // DB_MAX_CONNS, each replica's pool (Config.Connections counts them)
	MemoryMB        int
	CPUs            string        // as the docker provider reads it back (Config.DockerCPUs)
	StopGrace       int           // seconds between SIGTERM and SIGKILL
	StartTimeout    time.Duration // how long a new replica may take to turn healthy
	Linger          time.Duration // SHUTDOWN_LINGER: a drained replica keeps its address this long
	// Network is the app network (nginx reaches the replicas there, by their alias),
	// DataNetwork the data network (Postgres); the migration joins only the data network.
	Network         pulumi.StringOutput
	NetworkName     string // Network's name, known before it exists (part of the replica spec)
	DataNetwork     pulumi.StringOutput
	DataNetworkName string

	// Database.
	OwnerURL      pulumi.StringOutput // secret; migrations
	AppURL        pulumi.StringOutput // secret; replicas
	AppPassword   pulumi.StringOutput // secret; the migration sets it on AppRole
	DatabaseReady []pulumi.Resource   // what the migration waits for (empty: external database)
	// ConfigChecked is what must pass before the migration, and so before anything of the app
	// changes: the check of the new nginx configuration (Proxy.Check).
	ConfigChecked []pulumi.Resource

	// Writes: WriteAuth is the replicas' WRITE_AUTH; APITokens the content of their
	// API_TOKENS_FILE (secret; unused with WriteAuthNone). TrustedProxies are the networks
	// whose X-Forwarded-For they believe (TRUSTED_PROXIES: the stack network's subnets).
	WriteAuth      string
	APITokens      pulumi.StringOutput
	TrustedProxies pulumi.StringOutput
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
		WriteAuth: args.WriteAuth,
		MemoryMB:  args.MemoryMB, CPUs: args.CPUs, StopGrace: args.StopGrace, Linger: args.Linger.String(),
		Network: args.NetworkName, DataNetwork: args.DataNetworkName, DBMaxConns: args.DBMaxConns, Version: 4,
	}
	specJSON, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}

	protected := args.WriteAuth != WriteAuthNone
	revisionTriggers := pulumi.Array{a.ImageID, pulumi.String(sha256Hex(specJSON)), args.OwnerURL, args.AppURL, args.TrustedProxies}
	uploads := docker.ContainerUploadArray{docker.ContainerUploadArgs{File: pulumi.String(databaseURLFile), Content: args.AppURL, Permissions: pulumi.String("0440")}}
	env := pulumi.StringArray{pulumi.String("WRITE_AUTH=" + args.WriteAuth), pulumi.Sprintf("TRUSTED_PROXIES=%s", args.TrustedProxies)}
	if protected {
		revisionTriggers = append(revisionTriggers, args.APITokens)
		uploads = append(uploads, docker.ContainerUploadArgs{File: pulumi.String(apiTokensFile), Content: args.APITokens, Permissions: pulumi.String("0440")})
		env = append(env, pulumi.String("API_TOKENS_FILE="+apiTokensFile))
	}

	// The revision: a random id, regenerated only when one of its triggers changes. Secrets in
	// the triggers are stored encrypted (the Triggers array is secret as a whole).
	rev, err := local.NewCommand(ctx, name+"-revision", &local.CommandArgs{
		Create:   pulumi.String(`od -An -N4 -tx1 /dev/urandom | tr -d ' \n'`),
		Triggers: revisionTriggers,
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

	// Phase migrate: `notes migrate up` as the owner (it also creates/rotates the notes_app
	// role), in a throwaway container on the host (scripts/migrate.sh): the secrets travel on
	// the command's secret stdin into files of that container, which is removed once it exited.
	// A non-zero exit fails the update before any replica is created or replaced. The name holds
	// the revision: a new revision (image, settings, secrets) runs it again.
	migName := pulumi.Sprintf("%s-%s", objectName(args.Stack, "migrate"), a.RevisionID)
	migCmd := pulumi.All(migName, a.ImageID, args.DataNetwork).ApplyT(func(v []any) string {
		cmd, _ := args.OnHost.Script(migrateScript, append([]string{v[0].(string), v[1].(string)},
			migrateOptions(args, v[2].(string))...)...)
		return cmd
	}).(pulumi.StringOutput)
	_, migEnv := args.OnHost.Script(migrateScript)
	migSecrets := pulumi.ToSecret(pulumi.All(args.OwnerURL, args.AppPassword).ApplyT(func(v []any) (string, error) {
		return secretTarBase64(map[string][]byte{
			strings.TrimPrefix(databaseURLFile, "/"): []byte(v[0].(string)),
			strings.TrimPrefix(appPasswordFile, "/"): []byte(v[1].(string)),
		}, serviceUID)
	})).(pulumi.StringOutput)
	mig, err := local.NewCommand(ctx, name+"-migrate", &local.CommandArgs{
		Create:      migCmd,
		Environment: migEnv,
		Stdin:       migSecrets,
		Triggers:    pulumi.Array{a.RevisionID},
		Logging:     local.LoggingStdoutAndStderr,
	}, pulumi.Parent(a), pulumi.DependsOn(append(append(append([]pulumi.Resource{}, args.HostReady...), args.DatabaseReady...), args.ConfigChecked...)))
	if err != nil {
		return nil, err
	}
	a.Migration = mig
	a.MigrationName = migName
	// "0" once the migration exited 0 (the command fails otherwise): the proof checks it.
	a.MigrationStatus = mig.Stdout.ApplyT(func(out string) (string, error) {
		return migrationStatus(out)
	}).(pulumi.StringOutput)

	// Phase roll out (first half): the new replicas, next to the old ones, under the stack's
	// replica alias on the network (nginx resolves it at run time). The proof then checks them
	// and Retire takes the old ones out of the alias and stops them.
	network := docker.ContainerNetworksAdvancedArray{
		docker.ContainerNetworksAdvancedArgs{
			Name:    args.Network,
			Aliases: pulumi.ToStringArray([]string{ReplicaAlias(args.Stack)}),
		},
		docker.ContainerNetworksAdvancedArgs{Name: args.DataNetwork},
	}
	var names pulumi.StringArray
	for i := 1; i <= args.Replicas; i++ {
		r, err := docker.NewContainer(ctx, fmt.Sprintf("%s-%d", name, i), &docker.ContainerArgs{
			Name:    pulumi.Sprintf("%s-%d-%s", name, i, a.RevisionID),
			Image:   a.ImageID,
			Command: pulumi.ToStringArray([]string{"serve"}),
			User:    pulumi.String(serviceUser),
			// The uploaded secret file is root's (the provider writes uploads as root), readable
			// by group 0: the replica's only supplementary group.
			GroupAdds: pulumi.ToStringArray([]string{"0"}),
			// Not read-only: Docker refuses uploads (the secret file) into a read-only root
			// filesystem, and the provider uploads to the root filesystem even below a volume.
			// The process cannot write to it anyway: non-root, no capabilities, every directory
			// of the image root's and not group- or world-writable; /tmp is a tmpfs.
			Tmpfs:        pulumi.StringMap{"/tmp": pulumi.String("rw,noexec,nosuid,nodev,size=16m")},
			Uploads:      uploads,
			Capabilities: docker.ContainerCapabilitiesArgs{Drops: pulumi.ToStringArray([]string{"ALL"})},
			SecurityOpts: pulumi.ToStringArray([]string{"no-new-privileges"}),
			Memory:       pulumi.Int(args.MemoryMB),
			MemorySwap:   pulumi.Int(args.MemoryMB),
			Cpus:         pulumi.String(args.CPUs),
			LogDriver:    pulumi.String("json-file"),
			LogOpts:      logOpts(),
			Envs: append(pulumi.StringArray{
				pulumi.String("DATABASE_URL_FILE=" + databaseURLFile),
				pulumi.Sprintf("NOTES_REVISION=%s", a.RevisionID),
				pulumi.String("HTTP_ADDR=:8080"),
				pulumi.String("LOG_LEVEL=" + args.LogLevel),
				pulumi.String("LOG_FORMAT=json"),
				pulumi.String("DRAIN_DELAY=" + args.DrainDelay.String()),
				pulumi.String("SHUTDOWN_TIMEOUT=" + args.ShutdownTimeout.String()),
				pulumi.String("SHUTDOWN_LINGER=" + args.Linger.String()),
				pulumi.Sprintf("DB_MAX_CONNS=%d", args.DBMaxConns),
			}, env...),
			NetworksAdvanced: network,
			// Started (reached the database once), not only alive: Wait returns once a new
			// replica can serve; see appHealthTest.
			Healthcheck: docker.ContainerHealthcheckArgs{
				Tests:       pulumi.ToStringArray(appHealthTest),
				Interval:    pulumi.String("3s"),
				Timeout:     pulumi.String(appHealthTimeout),
				Retries:     pulumi.Int(3),
				StartPeriod: pulumi.String("10s"),
			},
			Wait:                pulumi.Bool(true),
			WaitTimeout:         pulumi.Int(int(args.StartTimeout.Seconds())),
			Restart:             pulumi.String("unless-stopped"),
			StopSignal:          pulumi.String("SIGTERM"),
			StopTimeout:         pulumi.Int(args.StopGrace),
			DestroyGraceSeconds: pulumi.Int(args.StopGrace),
			Labels: append(containerLabels(args.Stack, "app", "org.opencontainers.image.version", args.AppVersion),
				docker.ContainerLabelArgs{Label: pulumi.String("com.notes-stack.revision"), Value: a.RevisionID}),
		}, pulumi.Parent(a), prov, pulumi.DependsOn([]pulumi.Resource{mig}), createBeforeDelete, pulumi.ResourceHooks(args.Orphans),
			// Retire (retire.go) stops old replicas once the new ones are proven.
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
		"migration":    migName,
	}); err != nil {
		return nil, err
	}
	return a, nil
}

// The service's user (the image's nonroot) and where its secrets are, inside its containers.
const (
	serviceUser     = "65532:65532"
	serviceUID      = 65532
	secretsDir      = "/run/secrets"
	databaseURLFile = secretsDir + "/database-url"
	appPasswordFile = secretsDir + "/app-db-password"
	apiTokensFile   = secretsDir + "/api-tokens"
)

//go:embed scripts/migrate.sh
var migrateScript string

// ReplicaAlias is the network alias every replica of the stack joins on the app network; nginx
// resolves it. It is not notes-<stack>-app, the alias of the replicas of a stack deployed before
// the network split: those sit on the edge network under that name, and nginx, on the edge and
// the app networks, kept resolving it to them (Docker's DNS answers from one of the container's
// networks), so the new replicas were never proven and the upgrade failed at the smoke check.
func ReplicaAlias(stack string) string { return objectName(stack, "replicas") }

// migrateOptions are the docker create options of the migration container: hardened like the
// replicas, except the root filesystem (docker cp, which delivers the secrets, refuses a
// read-only one), and no secret among them.
func migrateOptions(args *AppArgs, network string) []string {
	opts := []string{
		"--user", serviceUser, "--network", network,
		"--cap-drop", "ALL", "--security-opt", "no-new-privileges",
		"--memory", fmt.Sprintf("%dm", args.MemoryMB), "--memory-swap", fmt.Sprintf("%dm", args.MemoryMB), "--cpus", args.CPUs,
		"--log-driver", "json-file", "--log-opt", "max-size=10m", "--log-opt", "max-file=3",
		"--label", "com.notes-stack.stack=" + args.Stack, "--label", "com.notes-stack.role=migrate",
		"--label", "org.opencontainers.image.version=" + args.AppVersion,
	}
	for _, e := range []string{
		"DATABASE_URL_FILE=" + databaseURLFile,
		"APP_DB_ROLE=" + AppRole,
		"APP_DB_PASSWORD_FILE=" + appPasswordFile,
		"LOG_LEVEL=" + args.LogLevel,
		"LOG_FORMAT=json",
	} {
		opts = append(opts, "--env", e)
	}
	return opts
}

// migrationStatus is the migration's exit status from the last line scripts/migrate.sh prints.
func migrationStatus(out string) (string, error) {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, "phase migrate: ") || !strings.HasSuffix(last, " exited 0") {
		return "", fmt.Errorf("phase migrate: no exit status in the migration's output (last line %q)", last)
	}
	return "0", nil
}

// createBeforeDelete overrides the Terraform bridge's default for explicitly named resources:
// without it docker containers are replaced delete-before-create (the old replica is stopped
// before the new one exists, and nginx answers 502 in between). Our names change with every
// revision, so create-before-delete cannot conflict.
var createBeforeDelete = pulumi.DeleteBeforeReplace(false)
