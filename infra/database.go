package main

import (
	_ "embed"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/pulumi/pulumi-command/sdk/go/command/local"
	"github.com/pulumi/pulumi-docker/sdk/v4/go/docker"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// Paths inside the Postgres container.
const (
	dbPasswordFile = "/run/secrets/postgres-password"
	dbEntrypoint   = "/usr/local/bin/notes-db-entrypoint"
)

//go:embed scripts/db-entrypoint.sh
var dbEntrypointScript string

//go:embed scripts/db-network.sh
var dbNetworkScript string

// DatabaseArgs is what the Database component uses. With ExternalURL set, no container is
// created and only the connection strings are derived.
type DatabaseArgs struct {
	Stack    string
	Provider *docker.Provider
	// Orphans is the hook that removes a container an interrupted up left under a name this
	// component creates (newOrphanHook); nil for none.
	Orphans *pulumi.ResourceHookBinding
	OnHost  OnHost // the password command runs on the host

	ExternalURL pulumi.StringOutput // secret; owner URL of an external database
	External    bool

	Image string
	// Network is the data network. EdgeNetwork is the stack network of before the split, which
	// an existing database container leaves after this deploy (LeaveEdge).
	Network     pulumi.StringOutput
	EdgeNetwork pulumi.StringOutput
	DataVolume  pulumi.StringOutput
	Port        int                 // publish on BindAddress:Port; 0 = not published
	BindAddress string              // validated loopback when Port is set
	Name        string              // database
	Owner       string              // owner role (POSTGRES_USER)
	Password    pulumi.StringOutput // secret; the owner's
	AppPassword pulumi.StringOutput // secret; AppRole's
	// Protect protects the container like its volume: no destroy, and no replacement (a new
	// image), without `pulumi state unprotect` first.
	Protect bool
	// MaxConnections is Postgres's max_connections (Config.Connections is checked against it).
	MaxConnections int
	// MemoryMB is the container's memory limit (notes:dbMemory); its pids limit is dbPids.
	MemoryMB int
	// HealthInterval is how often the health check runs (notes:dbHealthInterval).
	HealthInterval time.Duration
}

// Database is the Postgres container (or, with an external database, only the connection
// strings). OwnerURL is for migrations and backups, AppURL (role notes_app) for the replicas;
// both are secrets.
type Database struct {
	pulumi.ResourceState

	OwnerURL pulumi.StringOutput
	AppURL   pulumi.StringOutput
	// Host is the host name of the database as seen from the stack's network (the container's
	// name, or the external host).
	Host pulumi.StringOutput
	// ImageID is the Postgres image the container runs (unset with an external database).
	ImageID pulumi.StringOutput
	// Ready is what must exist before the database is used: the container and the command that
	// applies the owner's password; empty with an external database.
	Ready []pulumi.Resource
	// Container is the Postgres container (nil with an external database).
	Container *docker.Container
}

// NewDatabase registers the Database component name (notes-<stack>-db, also the container's
// name).
func NewDatabase(ctx *pulumi.Context, name string, args *DatabaseArgs, opts ...pulumi.ResourceOption) (*Database, error) {
	d := &Database{}
	if err := ctx.RegisterComponentResource("notes:infra:Database", name, d, opts...); err != nil {
		return nil, err
	}
	if args.External {
		d.OwnerURL = args.ExternalURL
		d.AppURL = pulumi.All(args.ExternalURL, args.AppPassword).ApplyT(func(v []any) (string, error) {
			return withUser(v[0].(string), AppRole, v[1].(string))
		}).(pulumi.StringOutput)
		d.Host = args.ExternalURL.ApplyT(func(s string) (string, error) {
			u, err := url.Parse(s)
			if err != nil {
				return "", fmt.Errorf("config notes:databaseUrl: not a URL")
			}
			return u.Hostname(), nil
		}).(pulumi.StringOutput)
		// The host name is not secret; the URL is.
		d.Host = pulumi.Unsecret(d.Host).(pulumi.StringOutput)
		if err := ctx.RegisterResourceOutputs(d, pulumi.Map{"host": d.Host}); err != nil {
			return nil, err
		}
		return d, nil
	}

	prov := pulumi.Provider(args.Provider)
	img, err := docker.NewRemoteImage(ctx, name+"-image", &docker.RemoteImageArgs{
		Name:        pulumi.String(args.Image),
		KeepLocally: pulumi.Bool(true),
	}, pulumi.Parent(d), prov)
	if err != nil {
		return nil, err
	}
	d.ImageID = img.ImageId

	var ports docker.ContainerPortArray
	if args.Port != 0 { // validated: only on a loopback bindAddress
		ports = docker.ContainerPortArray{docker.ContainerPortArgs{
			Internal: pulumi.Int(5432),
			External: pulumi.Int(args.Port),
			Ip:       pulumi.String(args.BindAddress),
			Protocol: pulumi.String("tcp"),
		}}
	}
	c, err := docker.NewContainer(ctx, name+"-container", &docker.ContainerArgs{
		Name:  pulumi.String(name),
		Image: img.ImageId,
		Envs: pulumi.StringArray{
			pulumi.String("POSTGRES_USER=" + args.Owner),
			pulumi.String("POSTGRES_DB=" + args.Name),
			pulumi.String("POSTGRES_PASSWORD_FILE=" + dbPasswordFile),
		},
		// The password reaches the image's entrypoint as a file, never in the environment.
		Entrypoints: pulumi.ToStringArray([]string{"/bin/sh", dbEntrypoint}),
		Command:     pulumi.ToStringArray(postgresCommand(args.MaxConnections)),
		Uploads: docker.ContainerUploadArray{
			docker.ContainerUploadArgs{File: pulumi.String(dbPasswordFile), Content: args.Password, Permissions: pulumi.String("0400")},
			docker.ContainerUploadArgs{File: pulumi.String(dbEntrypoint), Content: pulumi.String(dbEntrypointScript), Permissions: pulumi.String("0555")},
		},
		Volumes: docker.ContainerVolumeArray{docker.ContainerVolumeArgs{
			VolumeName:    args.DataVolume,
			ContainerPath: pulumi.String("/var/lib/postgresql/data"),
			ReadOnly:      pulumi.Bool(false),
		}},
		NetworksAdvanced: docker.ContainerNetworksAdvancedArray{docker.ContainerNetworksAdvancedArgs{
			Name: args.Network,
		}},
		Ports: ports,
		// 127.0.0.1, not the socket: the image's first-start init server listens only on the
		// socket, so this turns healthy once the real server accepts TCP connections.
		Healthcheck: docker.ContainerHealthcheckArgs{
			Tests:       pulumi.ToStringArray(postgresHealthTest(args.Owner, args.Name)),
			Interval:    pulumi.String(args.HealthInterval.String()),
			Timeout:     pulumi.String("3s"),
			Retries:     pulumi.Int(dbHealthRetries(args.HealthInterval)),
			StartPeriod: pulumi.String("1m0s"), // Go duration format, as the provider reads it back,
		},
		Wait:        pulumi.Bool(true),
		WaitTimeout: pulumi.Int(180),
		Restart:     pulumi.String("unless-stopped"),
		ShmSize:     pulumi.Int(256),
		// A memory limit is changed in place (docker update): an existing, protected database
		// container is not replaced for it.
		Memory:              pulumi.Int(args.MemoryMB),
		MemorySwap:          pulumi.Int(args.MemoryMB),
		SecurityOpts:        pulumi.ToStringArray([]string{"no-new-privileges"}),
		StopTimeout:         pulumi.Int(60),
		DestroyGraceSeconds: pulumi.Int(60),
		LogDriver:           pulumi.String("json-file"),
		LogOpts:             logOpts(),
		Labels:              containerLabels(args.Stack, "db"),
	}, pulumi.Parent(d), prov,
		// POSTGRES_* (and the password file) only act when the data directory is first
		// initialised; a change would only recreate (stop, then start) the database. Password
		// changes go through the password command below instead. Its networks change in place
		// (db-network.sh): a container from before the network split joins the data network
		// rather than being replaced.
		pulumi.IgnoreChanges([]string{"envs", "uploads", "networksAdvanced"}), pulumi.Protect(args.Protect), pulumi.ResourceHooks(args.Orphans))
	if err != nil {
		return nil, err
	}
	d.Container = c
	_, env := args.OnHost.Script(dbNetworkScript)
	joinCmd := args.Network.ApplyT(func(n string) string {
		cmd, _ := args.OnHost.Script(dbNetworkScript, "join", name, n)
		return cmd
	}).(pulumi.StringOutput)
	joined, err := local.NewCommand(ctx, name+"-join-data", &local.CommandArgs{
		Create: joinCmd, Environment: env, Triggers: pulumi.Array{c.ID()}, Logging: local.LoggingStdoutAndStderr,
	}, pulumi.Parent(d), pulumi.DependsOn([]pulumi.Resource{c}))
	if err != nil {
		return nil, err
	}

	if _, err := newPidsLimit(ctx, name+"-pids", args.OnHost, c, dbPids(args.MaxConnections), pulumi.Parent(d)); err != nil {
		return nil, err
	}

	// The owner's password, over the container's local socket, which the image trusts.
	setPassword, env := args.OnHost.Docker("exec", "-i", name,
		"psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-U", args.Owner, "-d", args.Name)
	pw, err := newPasswordCommand(ctx, name+"-password", setPassword, env, args.Owner, args.Password,
		pulumi.Parent(d), pulumi.DependsOn([]pulumi.Resource{c}))
	if err != nil {
		return nil, err
	}
	d.Ready = []pulumi.Resource{c, pw, joined}
	d.Host = c.Name
	d.OwnerURL = pulumi.All(c.Name, args.Password).ApplyT(func(v []any) string {
		return pgURL(v[0].(string), args.Name, args.Owner, v[1].(string))
	}).(pulumi.StringOutput)
	d.AppURL = pulumi.All(c.Name, args.AppPassword).ApplyT(func(v []any) string {
		return pgURL(v[0].(string), args.Name, AppRole, v[1].(string))
	}).(pulumi.StringOutput)
	if err := ctx.RegisterResourceOutputs(d, pulumi.Map{"container": c.Name, "host": d.Host}); err != nil {
		return nil, err
	}
	return d, nil
}

// LeaveEdge takes a database container from before the network split off the edge network once
// after (the replicas that still reached it there have retired); nothing for a new one.
func (d *Database) LeaveEdge(ctx *pulumi.Context, name string, args *DatabaseArgs, after []pulumi.Resource) error {
	if d.Container == nil {
		return nil
	}
	cmd := args.EdgeNetwork.ApplyT(func(n string) string {
		cmd, _ := args.OnHost.Script(dbNetworkScript, "leave", name, n)
		return cmd
	}).(pulumi.StringOutput)
	_, env := args.OnHost.Script(dbNetworkScript)
	_, err := local.NewCommand(ctx, name+"-leave-edge", &local.CommandArgs{
		Create: cmd, Environment: env, Triggers: pulumi.Array{d.Container.ID()}, Logging: local.LoggingStdoutAndStderr,
	}, pulumi.Parent(d), pulumi.DependsOn(append([]pulumi.Resource{d.Container}, after...)))
	return err
}

// newPasswordCommand runs create (psql as the owner, in the database's container or task) with
// the ALTER ROLE of the owner's password on its secret stdin, on every change of the password
// (and once after the first start, a no-op), before migrations and replicas use the new one.
func newPasswordCommand(ctx *pulumi.Context, name, create string, env pulumi.StringMap, owner string,
	password pulumi.StringOutput, opts ...pulumi.ResourceOption) (*local.Command, error) {
	return local.NewCommand(ctx, name, &local.CommandArgs{
		Create:      pulumi.String(create),
		Environment: env,
		Stdin: pulumi.ToSecret(password.ApplyT(func(p string) string {
			return alterPasswordSQL(owner, p)
		})).(pulumi.StringOutput),
		Logging: local.LoggingStderr,
	}, opts...)
}

// alterPasswordSQL sets role's password. The statement is kept out of the server log even where
// log_statement is ddl or all (the session's own settings; the owner is a superuser).
func alterPasswordSQL(role, password string) string {
	return fmt.Sprintf("SET log_statement = 'none';\nSET log_min_error_statement = 'panic';\nALTER ROLE %s PASSWORD %s;\n",
		quoteIdent(role), quoteLiteral(password))
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// quoteLiteral quotes s as a standard SQL string literal (standard_conforming_strings is on).
func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// pgURL is a connection string to the container database (no TLS inside the private network).
func pgURL(host, db, user, password string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(user, password),
		Host:     host + ":5432",
		Path:     "/" + db,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// withUser replaces the credentials of a postgres:// URL.
func withUser(raw, user, password string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") || u.Host == "" {
		// Never echo the URL: it holds a password.
		return "", fmt.Errorf("config notes:databaseUrl: must be a postgres://user:password@host:port/db URL")
	}
	u.User = url.UserPassword(user, password)
	return u.String(), nil
}

// postgresHealthTest is the database container's or task's healthcheck on both engines: ready for
// connections to the stack's database as its owner, over TCP like the clients.
// dbHealthRetries keeps about 25 s of failed checks (5 at the default 5 s) before Docker calls
// the database unhealthy (and Swarm restarts it), whatever the interval.
func dbHealthRetries(interval time.Duration) int {
	return max(3, int((25*time.Second+interval-1)/interval))
}

func postgresHealthTest(owner, db string) []string {
	return []string{"CMD-SHELL", fmt.Sprintf("pg_isready -q -h 127.0.0.1 -U %s -d %s", owner, db)}
}

// postgresMajor is the major version in the tag of a Postgres image reference: "postgres:17",
// "postgres:17.2-alpine" and "registry:5000/postgres:17@sha256:..." give "17".
func postgresMajor(image string) (string, error) {
	ref, _, _ := strings.Cut(image, "@")
	tag := ""
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		tag = ref[i+1:]
	}
	n := 0
	for n < len(tag) && '0' <= tag[n] && tag[n] <= '9' {
		n++
	}
	if n == 0 || (n < len(tag) && tag[n] != '.' && tag[n] != '-') {
		return "", fmt.Errorf("%q has no major version in its tag (postgres:17, postgres:17.2-alpine): the program needs it to refuse a major upgrade, which the data directory cannot take", image)
	}
	return tag[:n], nil
}

// dbMajorRefusal is the guard's update command; like the engine guard's, keep it (and the
// create command's form) exactly as it is: every stack's state holds them.
const dbMajorRefusal = `printf 'config notes:postgresImage: the data directory of this stack was initialised by Postgres %s, and an image of another major version cannot read it (Postgres would not start). Keep major %s, or move the data: backupNowCommand, copy the dump off the host, pulumi destroy (with protect: unprotect first), set the new image, pulumi up, restoreCommand (docs/infra.md, Backups and restore).\n' "$PULUMI_COMMAND_STDOUT" "$PULUMI_COMMAND_STDOUT" >&2; exit 1`

// newDBMajorGuard records the major version of the stack's Postgres image and refuses to change
// it, before anything reaches the host (HostArgs.After). pulumi-command runs Update when Create
// changes (the major), with the previous stdout in PULUMI_COMMAND_STDOUT. A minor update
// (17.2 → 17.3) changes nothing here.
func newDBMajorGuard(ctx *pulumi.Context, name, major string, opts ...pulumi.ResourceOption) (*local.Command, error) {
	return local.NewCommand(ctx, name, &local.CommandArgs{
		Create: pulumi.String("echo " + major),
		Update: pulumi.String(dbMajorRefusal),
	}, opts...)
}

// dbPids is the Postgres container's or task's pids limit: a backend per connection, plus its
// background processes, parallel workers and the psql and pg_isready of the program and the
// healthcheck.
func dbPids(maxConnections int) int { return maxConnections + 64 }

// postgresCommand is the database's command on both engines: max_connections set explicitly, so
// the connection check of `pulumi up` (Config.Connections) holds whatever the image's initdb
// chose.
func postgresCommand(maxConnections int) []string {
	return []string{"postgres", "-c", "max_connections=" + strconv.Itoa(maxConnections)}
}
