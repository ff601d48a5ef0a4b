package main

import (
	_ "embed"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/pulumi/pulumi-docker/sdk/v4/go/docker"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

//go:embed scripts/notes-backup.sh
var backupScript string

// BackupCommand is the path of the backup script inside the backup container.
const BackupCommand = "/usr/local/bin/notes-backup"

// Backups is a container (Postgres image, for pg_dump/pg_restore) that dumps the database every
// backupInterval into the backups volume and keeps the backupRetention newest dumps. Run
// `docker exec <container> notes-backup now|list|restore FILE` for manual backups and restores.
//
// The connection reaches pg_dump/pg_restore through libpq's PG* environment variables (built from
// the owner URL), never through their argv: a --dbname=postgres://owner:password@... argument is
// readable by every user of the host in `ps`. The password is in a .pgpass file (PGPASSFILE,
// mode 0400, the container runs as root), uploaded from a secret: never in the environment,
// which `docker inspect` shows.
type Backups struct {
	pulumi.ResourceState

	Container *docker.Container
}

// BackupsArgs is what the Backups component uses.
type BackupsArgs struct {
	Stack    string
	Provider *docker.Provider
	// Orphans is the hook that removes a container an interrupted up left under a name this
	// component creates (newOrphanHook); nil for none.
	Orphans *pulumi.ResourceHookBinding
	// ImageID is an already pulled Postgres image (the database's); nil to pull Image here (an
	// external database).
	ImageID  pulumi.StringInput
	Image    string
	OwnerURL pulumi.StringOutput // secret
	Network  pulumi.StringOutput
	Volume   pulumi.StringOutput // the backups volume
	Interval time.Duration
	Keep     int
	Verify   bool // BACKUP_VERIFY: the test restore of every dump
	// Ready is what the first dump waits for (the database and the migration).
	Ready []pulumi.Resource
}

// NewBackups registers the Backups component name (notes-<stack>-backup, also the container's
// name).
func NewBackups(ctx *pulumi.Context, name string, args *BackupsArgs, opts ...pulumi.ResourceOption) (*Backups, error) {
	b := &Backups{}
	if err := ctx.RegisterComponentResource("notes:infra:Backups", name, b, opts...); err != nil {
		return nil, err
	}
	prov := pulumi.Provider(args.Provider)
	image := args.ImageID
	if image == nil {
		img, err := docker.NewRemoteImage(ctx, name+"-image", &docker.RemoteImageArgs{
			Name:        pulumi.String(args.Image),
			KeepLocally: pulumi.Bool(true),
		}, pulumi.Parent(b), prov)
		if err != nil {
			return nil, err
		}
		image = img.ImageId
	}
	conn := newPGConn(args.OwnerURL)
	c, err := docker.NewContainer(ctx, name+"-container", &docker.ContainerArgs{
		Name:        pulumi.String(name),
		Image:       image,
		Entrypoints: pulumi.ToStringArray([]string{"/bin/sh", BackupCommand, "loop"}),
		Envs: pulumi.StringArray{
			conn.env("PGHOST"),
			conn.env("PGPORT"),
			conn.env("PGUSER"),
			conn.env("PGDATABASE"),
			conn.env("PGSSLMODE"),
			conn.env("PGCONNECT_TIMEOUT"),
			conn.env("PGAPPNAME"),
			pulumi.String("PGPASSFILE=" + backupPassFile),
			pulumi.String("BACKUP_DIR=/backups"),
			pulumi.String(fmt.Sprintf("BACKUP_INTERVAL=%d", int(args.Interval.Seconds()))),
			pulumi.String(fmt.Sprintf("BACKUP_RETENTION=%d", args.Keep)),
			pulumi.String("BACKUP_VERIFY=" + backupVerifyEnv(args.Verify)),
		},
		// Unhealthy once the last good dump is older than two intervals (notes-backup health).
		Healthcheck: docker.ContainerHealthcheckArgs{
			// Durations in Go's format and the start period set: what the provider reads back,
			// so an unchanged up shows no diff.
			Tests:       pulumi.ToStringArray(backupHealthTest),
			Interval:    pulumi.String(backupHealthInterval.String()),
			Timeout:     pulumi.String(backupHealthTimeout.String()),
			Retries:     pulumi.Int(backupHealthRetries),
			StartPeriod: pulumi.String(backupHealthInterval.String()),
		},
		Uploads: docker.ContainerUploadArray{
			docker.ContainerUploadArgs{
				File:       pulumi.String(BackupCommand),
				Content:    pulumi.String(backupScript),
				Executable: pulumi.Bool(true),
			},
			docker.ContainerUploadArgs{File: pulumi.String(backupPassFile), Content: conn.passfile(), Permissions: pulumi.String("0400")},
		},
		Volumes: docker.ContainerVolumeArray{docker.ContainerVolumeArgs{
			VolumeName: args.Volume, ContainerPath: pulumi.String("/backups"), ReadOnly: pulumi.Bool(false),
		}},
		NetworksAdvanced: docker.ContainerNetworksAdvancedArray{docker.ContainerNetworksAdvancedArgs{Name: args.Network}},
		Capabilities:     docker.ContainerCapabilitiesArgs{Drops: pulumi.ToStringArray([]string{"ALL"})},
		SecurityOpts:     pulumi.ToStringArray([]string{"no-new-privileges"}),
		Memory:           pulumi.Int(512),
		MemorySwap:       pulumi.Int(512), // explicit, or the provider reads back 2x and diffs
		Restart:          pulumi.String("unless-stopped"),
		StopTimeout:      pulumi.Int(10),
		LogDriver:        pulumi.String("json-file"),
		LogOpts:          logOpts(),
		Labels:           containerLabels(args.Stack, "backup"),
	}, pulumi.Parent(b), prov, pulumi.DependsOn(args.Ready), pulumi.ResourceHooks(args.Orphans))
	if err != nil {
		return nil, err
	}
	b.Container = c
	if err := ctx.RegisterResourceOutputs(b, pulumi.Map{"container": c.Name}); err != nil {
		return nil, err
	}
	return b, nil
}

// pgConn is a postgres:// URL split into libpq environment variables.
type pgConn struct {
	params pulumi.StringMapOutput // secret: holds PGPASSWORD
}

func newPGConn(ownerURL pulumi.StringOutput) pgConn {
	return pgConn{params: ownerURL.ApplyT(pgEnv).(pulumi.StringMapOutput)}
}

// env is NAME=value for a connection parameter other than the password; not secret.
func (c pgConn) env(name string) pulumi.StringOutput {
	v := c.params.MapIndex(pulumi.String(name))
	return pulumi.Unsecret(pulumi.Sprintf("%s=%s", name, v)).(pulumi.StringOutput)
}

// The backup container's (and service's) healthcheck: `notes-backup health`, cheap (it reads the
// dumps' times), fails once the last good dump is older than two intervals.
var backupHealthTest = []string{"CMD", "/bin/sh", BackupCommand, "health"}

const (
	backupHealthInterval = time.Minute // also the start period, in which failures do not count
	backupHealthTimeout  = 10 * time.Second
	backupHealthRetries  = 2
)

func backupVerifyEnv(on bool) string {
	if on {
		return "1"
	}
	return "0"
}

// backupPassFile is the .pgpass file in the backup container.
const backupPassFile = "/run/secrets/pgpass"

// passfile is the content of a .pgpass file for the connection, always secret.
func (c pgConn) passfile() pulumi.StringOutput {
	return pulumi.ToSecret(c.params.ApplyT(func(p map[string]string) string {
		// Any database: the test restore connects to its scratch database with the same role.
		return pgpassLine(p["PGHOST"], p["PGPORT"], "*", p["PGUSER"], p["PGPASSWORD"])
	})).(pulumi.StringOutput)
}

// pgpassLine is one .pgpass line (libpq: ':' and '\' in a field are escaped with '\').
func pgpassLine(fields ...string) string {
	esc := strings.NewReplacer(`\`, `\\`, ":", `\:`)
	for i, f := range fields {
		fields[i] = esc.Replace(f)
	}
	return strings.Join(fields, ":") + "\n"
}

// pgURLParams maps the query parameters of a connection URL the backup container supports to
// their libpq environment variables, with the value used when the URL does not set them (libpq's
// own default, except the application name).
var pgURLParams = map[string]struct{ env, def string }{
	"sslmode":          {"PGSSLMODE", "prefer"},
	"connect_timeout":  {"PGCONNECT_TIMEOUT", "0"},
	"application_name": {"PGAPPNAME", "notes-backup"},
}

// pgEnv splits a postgres://user:password@host:port/db?sslmode=... URL into PGHOST, PGPORT,
// PGUSER, PGDATABASE, PGPASSWORD and the variables of pgURLParams. Errors never echo the URL (it
// holds a password).
func pgEnv(raw string) (map[string]string, error) {
	bad := func(why string) error {
		return fmt.Errorf("backups: the owner connection URL (notes:databaseUrl) %s", why)
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") || u.Hostname() == "" {
		return nil, bad("must be a postgres://user:password@host:port/db URL")
	}
	if u.User == nil || u.User.Username() == "" {
		return nil, bad("has no user name")
	}
	db := strings.TrimPrefix(u.Path, "/")
	if db == "" || strings.Contains(db, "/") {
		return nil, bad("must name one database in its path")
	}
	port := u.Port()
	if port == "" {
		port = "5432"
	}
	pw, _ := u.User.Password()
	env := map[string]string{
		"PGHOST":     u.Hostname(),
		"PGPORT":     port,
		"PGUSER":     u.User.Username(),
		"PGDATABASE": db,
		"PGPASSWORD": pw,
	}
	q := u.Query()
	var unsupported []string
	for k := range q {
		if _, ok := pgURLParams[k]; !ok {
			unsupported = append(unsupported, k)
		}
	}
	if len(unsupported) > 0 {
		sort.Strings(unsupported)
		return nil, bad(fmt.Sprintf("has query parameters the backup container does not support: %s (supported: application_name, connect_timeout, sslmode)", strings.Join(unsupported, ", ")))
	}
	for k, p := range pgURLParams {
		env[p.env] = p.def
		if v := q.Get(k); v != "" {
			env[p.env] = v
		}
	}
	for k, v := range env {
		if strings.ContainsAny(v, "\x00\n") {
			return nil, bad(fmt.Sprintf("has a control character in %s", k))
		}
	}
	return env, nil
}
