package main

import (
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/notes-stack/notes/nginx"
	"github.com/pulumi/pulumi-command/sdk/go/command/local"
	"github.com/pulumi/pulumi-docker/sdk/v4/go/docker"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

//go:embed scripts/swarm-manager.sh
var swarmManagerScript string

//go:embed scripts/swarm-watch.sh
var swarmWatchScript string

//go:embed scripts/swarm-db-password.sh
var swarmDBPasswordScript string

// Swarm is the stack on engine swarm: the same stack as on engine containers (database,
// migration, app, nginx, backups, smoke check), declared as Swarm services on an overlay network
// with Docker secrets. What the container engine does by hand, the engine does here: the app's
// rolling update is start-first, one task at a time, gated on the image's healthcheck and rolled
// back by Swarm when a task does not turn healthy; a task leaves the service's DNS answer before
// it gets SIGTERM; failed tasks restart.
type Swarm struct {
	pulumi.ResourceState

	Manager   *local.Command // swarm init when needed, node labels
	Database  *docker.Service
	Migration *local.Command
	App       *docker.Service
	Watch     *local.Command // prints the tasks' errors of a failed app update
	Nginx     *docker.Service
	Backups   *docker.Service // nil unless backups=true
	Smoke     *local.Command

	Revision pulumi.StringOutput
	ImageID  pulumi.StringOutput
}

// Paths inside the Swarm engine's containers that differ from the container engine's.
const (
	swarmPGPassFile = "/run/secrets/pgpass"
	postgresUID     = "999" // the postgres user of the official image (and the stand-in)
)

// swarmTimings are the durations of the app service's rolling update.
type swarmTimings struct {
	// Monitor is how long Swarm watches an updated task before it counts it a success: longer
	// than the healthcheck's interval x retries, so a task that turns unhealthy right after its
	// first healthy check still rolls the update back.
	Monitor time.Duration
	// StopGrace is SIGTERM to SIGKILL: the drain (drain delay, shutdown timeout) and the linger.
	StopGrace time.Duration
	// Converge bounds how long `pulumi up` waits for an update to converge.
	Converge time.Duration
}

// App task healthcheck: the image's `notes healthcheck` against /readyz.
const (
	appHealthInterval = 3 * time.Second
	appHealthRetries  = 3
)

func newSwarmTimings(drainWait, linger time.Duration, replicas int) swarmTimings {
	monitor := 2*appHealthInterval*appHealthRetries + 5*time.Second
	perTask := 10*time.Second + monitor + drainWait // start period, monitor, the old task's drain
	return swarmTimings{
		Monitor:   monitor,
		StopGrace: drainWait + linger,
		Converge:  2*time.Minute + time.Duration(2*replicas)*perTask, // the update and its rollback
	}
}

// NewSwarm registers the Swarm component (notes-<stack>-swarm) and everything of the stack under
// it, in deploy order: manager, network and volumes, secrets, database, build, migrate, app,
// nginx, backups, smoke check. It exports the stack outputs.
func NewSwarm(ctx *pulumi.Context, cfg *Config, host *Host, build BuildContext) (*Swarm, error) {
	name := cfg.Name("swarm")
	sw := &Swarm{}
	if err := ctx.RegisterComponentResource("notes:infra:Swarm", name, sw, pulumi.DependsOn([]pulumi.Resource{host})); err != nil {
		return nil, err
	}
	parent := pulumi.Parent(sw)
	on := host.OnHost

	// Phase swarm: the daemon is a manager (swarm init when it is in no swarm) and its node
	// carries the stack's labels.
	advertise := ""
	if cfg.DockerHost.Kind == UnixHost {
		advertise = "127.0.0.1"
	}
	initCmd, env := on.Script(swarmManagerScript, "init", cfg.Stack, advertise)
	releaseCmd, _ := on.Script(swarmManagerScript, "release", cfg.Stack)
	mgr, err := local.NewCommand(ctx, name+"-manager", &local.CommandArgs{
		Create:      pulumi.String(initCmd),
		Delete:      pulumi.String(releaseCmd),
		Environment: env,
		Triggers:    pulumi.Array{pulumi.String(cfg.DockerHost.String())},
		Logging:     local.LoggingStdoutAndStderr,
	}, parent, pulumi.DependsOn(host.Ready))
	if err != nil {
		return nil, err
	}
	sw.Manager = mgr
	// Every Docker object of the stack goes through this provider, which waits for the manager
	// (a component's dependencies do not reach its children).
	swarmProv, err := docker.NewProvider(ctx, name+"-docker", &docker.ProviderArgs{
		Host:    pulumi.String(cfg.DockerHost.String()),
		SshOpts: pulumi.ToStringArray(on.ProviderSSHOpts()),
	}, parent, pulumi.DependsOn([]pulumi.Resource{mgr}))
	if err != nil {
		return nil, err
	}
	prov := pulumi.Provider(swarmProv)

	var volumes []string
	if !cfg.ExternalDB {
		volumes = append(volumes, "pgdata")
	}
	if cfg.BackupsEnabled {
		volumes = append(volumes, "backups")
	}
	net, err := NewNetwork(ctx, cfg.Name("net"), &NetworkArgs{
		Stack: cfg.Stack, Provider: swarmProv, Volumes: volumes, Protect: cfg.Protect, Overlay: true,
	}, parent)
	if err != nil {
		return nil, err
	}
	network := net.Network.Name
	networks := docker.ServiceTaskSpecNetworksAdvancedArray{docker.ServiceTaskSpecNetworksAdvancedArgs{Name: net.Network.ID()}}
	placeOnDBNode := []string{fmt.Sprintf("node.labels.com.notes-stack.%s.db==true", cfg.Stack)}
	res := func(role string) swarmRes {
		return swarmRes{ctx: ctx, stack: cfg.Stack, role: role, opts: []pulumi.ResourceOption{parent, prov}}
	}

	// Phase database: Postgres, one task pinned to the labelled node with its volume, updated
	// stop-first (two postmasters cannot share a data directory).
	dbName := cfg.Name("db")
	var ownerURL, appURL, dbHost pulumi.StringOutput
	var dbReady []pulumi.Resource
	if cfg.ExternalDB {
		ownerURL = cfg.DatabaseURL
		appURL = pulumi.All(cfg.DatabaseURL, cfg.AppDBPassword).ApplyT(func(v []any) (string, error) {
			return withUser(v[0].(string), AppRole, v[1].(string))
		}).(pulumi.StringOutput)
		dbHost = pulumi.Unsecret(cfg.DatabaseURL.ApplyT(func(s string) (string, error) {
			u, err := pgEnv(s)
			if err != nil {
				return "", err
			}
			return u["PGHOST"], nil
		})).(pulumi.StringOutput)
	} else {
		// The owner's password is only read when the data directory is first initialised:
		// the secret keeps its first value (a rotation is the ALTER ROLE below), so a new
		// password neither restarts Postgres nor deletes a secret in use.
		initPW, err := res("db-init-password").secret(cfg.DBPassword, pulumi.IgnoreChanges([]string{"data", "name"}))
		if err != nil {
			return nil, err
		}
		db, err := docker.NewService(ctx, dbName, &docker.ServiceArgs{
			Name:         pulumi.String(dbName),
			Labels:       serviceLabels(cfg.Stack, "db"),
			Mode:         replicated(1),
			EndpointSpec: docker.ServiceEndpointSpecArgs{Mode: pulumi.String("dnsrr")},
			TaskSpec: docker.ServiceTaskSpecArgs{
				ContainerSpec: docker.ServiceTaskSpecContainerSpecArgs{
					Image: pulumi.String(cfg.PostgresImage),
					Env: pulumi.StringMap{
						"POSTGRES_USER":          pulumi.String(cfg.DBOwner),
						"POSTGRES_DB":            pulumi.String(cfg.DBName),
						"POSTGRES_PASSWORD_FILE": pulumi.String(dbPasswordFile),
					},
					Secrets: docker.ServiceTaskSpecContainerSpecSecretArray{
						secretFile(initPW, dbPasswordFile, postgresUID, 0o400),
					},
					Mounts: docker.ServiceTaskSpecContainerSpecMountArray{
						docker.ServiceTaskSpecContainerSpecMountArgs{Type: pulumi.String("volume"), Source: net.Volumes["pgdata"], Target: pulumi.String("/var/lib/postgresql/data")},
						tmpfsMount("/dev/shm"),
					},
					Healthcheck: docker.ServiceTaskSpecContainerSpecHealthcheckArgs{
						Tests:       pulumi.ToStringArray(postgresHealthTest(cfg.DBOwner, cfg.DBName)),
						Interval:    pulumi.String("5s"),
						Timeout:     pulumi.String("3s"),
						Retries:     pulumi.Int(5),
						StartPeriod: pulumi.String("1m"), // as the provider reads it back
					},
					StopGracePeriod: pulumi.String("1m"),
					Labels:          taskLabels(cfg.Stack, "db"),
					Sysctl:          pulumi.StringMap{},
				},
				NetworksAdvanceds: networks,
				Placement:         docker.ServiceTaskSpecPlacementArgs{Constraints: pulumi.ToStringArray(placeOnDBNode)},
				RestartPolicy:     restartAny(),
				LogDriver:         jsonLogs(),
			},
			UpdateConfig:   updateConfig("stop-first", 30*time.Second, "pause"),
			ConvergeConfig: converge(5 * time.Minute),
		}, parent, prov, pulumi.Protect(cfg.Protect))
		if err != nil {
			return nil, err
		}
		sw.Database = db
		// Sets the owner's password to dbPassword on every change of it (and once after the
		// first start, a no-op), before the migration and the services use it.
		pwCmd, pwEnv := on.Script(swarmDBPasswordScript, dbName, cfg.DBOwner, cfg.DBName)
		pw, err := local.NewCommand(ctx, dbName+"-password", &local.CommandArgs{
			Create:      pulumi.String(pwCmd),
			Environment: pwEnv,
			Stdin: pulumi.ToSecret(cfg.DBPassword.ApplyT(func(p string) string {
				return alterPasswordSQL(cfg.DBOwner, p)
			})).(pulumi.StringOutput),
			Logging: local.LoggingStderr,
		}, parent, pulumi.DependsOn([]pulumi.Resource{db}))
		if err != nil {
			return nil, err
		}
		dbReady = []pulumi.Resource{db, pw}
		// The service's name, known before it exists: a preview of a database update leaves
		// the URLs (and the services that use them) known.
		dbHost = pulumi.String(dbName).ToStringOutput()
		ownerURL = cfg.DBPassword.ApplyT(func(p string) string {
			return pgURL(dbName, cfg.DBName, cfg.DBOwner, p)
		}).(pulumi.StringOutput)
		appURL = cfg.AppDBPassword.ApplyT(func(p string) string {
			return pgURL(dbName, cfg.DBName, AppRole, p)
		}).(pulumi.StringOutput)
	}

	// Phase build: the image on the manager's daemon, as on engine containers.
	appName := cfg.Name("app")
	buildCmd, buildEnv := buildCommand(on, build.Files, cfg.ImageRef(), cfg.GoImage, cfg.AppVersion, cfg.PushRegistry != "")
	img, err := local.NewCommand(ctx, appName+"-image", &local.CommandArgs{
		Create:      pulumi.String(buildCmd),
		Environment: buildEnv,
		Dir:         pulumi.String(build.Dir),
		Triggers: pulumi.Array{
			pulumi.String(build.Digest), pulumi.String(cfg.GoImage), pulumi.String(cfg.AppVersion),
			pulumi.String(cfg.ImageRef()), pulumi.String(cfg.DockerHost.String()),
		},
		Logging: local.LoggingStderr,
	}, parent, pulumi.DependsOn(host.Ready))
	if err != nil {
		return nil, err
	}
	sw.ImageID = img.Stdout.ApplyT(parseImageID).(pulumi.StringOutput)

	appSecret, err := res("app-database-url").secret(appURL)
	if err != nil {
		return nil, err
	}
	timings := newSwarmTimings(cfg.DrainWait(), newRetireTimings(cfg.DrainWait(), nginxDNSValid()).Linger, cfg.Replicas)
	spec := swarmAppSpec{
		LogLevel: cfg.LogLevel, DrainDelay: cfg.DrainDelay.String(), ShutdownTimeout: cfg.ShutdownTimeout.String(),
		MemoryMB: cfg.ServiceMemoryMB, CPUs: cfg.ServiceCPUs, StopGrace: timings.StopGrace.String(), Version: 1,
	}
	specJSON, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	// The revision (X-Notes-Revision): a hash of everything a task runs, so an unchanged up
	// keeps it and any change (image, settings, the database secrets) gives a new one, which
	// re-runs the migration and rolls the tasks.
	sw.Revision = pulumi.Unsecret(pulumi.All(sw.ImageID, appSecret.Name, ownerURL).ApplyT(func(v []any) string {
		return sha256Hex([]byte(cfg.ImageRef()), []byte(v[0].(string)), specJSON, []byte(v[1].(string)), []byte(v[2].(string)))[:8]
	})).(pulumi.StringOutput)

	// Phase migrate: scripts/migrate.sh, as on engine containers, in a throwaway container on
	// the attachable overlay network; the app service's spec changes only after it exited 0.
	migName := pulumi.Sprintf("%s-%s", objectName(cfg.Stack, "migrate"), sw.Revision)
	migArgs := &AppArgs{Stack: cfg.Stack, AppVersion: cfg.AppVersion, LogLevel: cfg.LogLevel, MemoryMB: cfg.ServiceMemoryMB, CPUs: cfg.DockerCPUs()}
	migCmd := pulumi.All(migName, sw.ImageID, network).ApplyT(func(v []any) string {
		cmd, _ := on.Script(migrateScript, append([]string{v[0].(string), v[1].(string)}, migrateOptions(migArgs, v[2].(string))...)...)
		return cmd
	}).(pulumi.StringOutput)
	_, migEnv := on.Script(migrateScript)
	mig, err := local.NewCommand(ctx, appName+"-migrate", &local.CommandArgs{
		Create:      migCmd,
		Environment: migEnv,
		Stdin: pulumi.ToSecret(pulumi.All(ownerURL, cfg.AppDBPassword).ApplyT(func(v []any) (string, error) {
			return secretTarBase64(map[string][]byte{
				strings.TrimPrefix(databaseURLFile, "/"): []byte(v[0].(string)),
				strings.TrimPrefix(appPasswordFile, "/"): []byte(v[1].(string)),
			}, serviceUID)
		})).(pulumi.StringOutput),
		Triggers: pulumi.Array{sw.Revision},
		Logging:  local.LoggingStdoutAndStderr,
	}, parent, pulumi.DependsOn(append([]pulumi.Resource{net}, dbReady...)))
	if err != nil {
		return nil, err
	}
	sw.Migration = mig

	// Phase roll out: the app service. Swarm replaces one task at a time, starting the new one
	// first and stopping the old one once the new one is healthy; a task that does not turn
	// healthy within the monitor window rolls the update back.
	cpus, err := strconv.ParseFloat(cfg.ServiceCPUs, 64)
	if err != nil {
		return nil, fmt.Errorf("config notes:serviceCpus: %w", err)
	}
	linger := newRetireTimings(cfg.DrainWait(), nginxDNSValid()).Linger
	app, err := docker.NewService(ctx, appName, &docker.ServiceArgs{
		Name:   pulumi.String(appName),
		Labels: serviceLabels(cfg.Stack, "app"),
		Mode:   replicated(cfg.Replicas),
		// Docker's DNS answers the service name with every task's address: nginx resolves
		// it at run time, as it resolves the replicas' alias on engine containers.
		EndpointSpec: docker.ServiceEndpointSpecArgs{Mode: pulumi.String("dnsrr")},
		TaskSpec: docker.ServiceTaskSpecArgs{
			ContainerSpec: docker.ServiceTaskSpecContainerSpecArgs{
				Image: pulumi.String(cfg.ImageRef()),
				Args:  pulumi.ToStringArray([]string{"serve"}),
				User:  pulumi.String(serviceUser),
				Env: pulumi.StringMap{
					"DATABASE_URL_FILE": pulumi.String(databaseURLFile),
					"NOTES_REVISION":    sw.Revision,
					"HTTP_ADDR":         pulumi.String(":8080"),
					"LOG_LEVEL":         pulumi.String(cfg.LogLevel),
					"LOG_FORMAT":        pulumi.String("json"),
					"DRAIN_DELAY":       pulumi.String(cfg.DrainDelay.String()),
					"SHUTDOWN_TIMEOUT":  pulumi.String(cfg.ShutdownTimeout.String()),
					"SHUTDOWN_LINGER":   pulumi.String(linger.String()),
				},
				Secrets:  docker.ServiceTaskSpecContainerSpecSecretArray{secretFile(appSecret, databaseURLFile, strconv.Itoa(serviceUID), 0o400)},
				ReadOnly: pulumi.Bool(true),
				Mounts:   docker.ServiceTaskSpecContainerSpecMountArray{tmpfsMount("/tmp")},
				CapDrops: pulumi.ToStringArray([]string{"ALL"}),
				Healthcheck: docker.ServiceTaskSpecContainerSpecHealthcheckArgs{
					Tests:       pulumi.ToStringArray([]string{"CMD", "/notes", "healthcheck", "--url", "http://127.0.0.1:8080/readyz"}),
					Interval:    pulumi.String(swarmDuration(appHealthInterval)),
					Timeout:     pulumi.String("2s"),
					Retries:     pulumi.Int(appHealthRetries),
					StartPeriod: pulumi.String("10s"),
				},
				StopSignal:      pulumi.String("SIGTERM"),
				StopGracePeriod: pulumi.String(swarmDuration(timings.StopGrace)),
				Labels:          taskLabels(cfg.Stack, "app"),
				Sysctl:          pulumi.StringMap{},
			},
			NetworksAdvanceds: networks,
			Resources: docker.ServiceTaskSpecResourcesArgs{Limits: docker.ServiceTaskSpecResourcesLimitsArgs{
				MemoryBytes: pulumi.Int(cfg.ServiceMemoryMB << 20),
				NanoCpus:    pulumi.Int(int(cpus * 1e9)),
			}},
			RestartPolicy: restartAny(),
			LogDriver:     jsonLogs(),
		},
		UpdateConfig:   updateConfig("start-first", timings.Monitor, "rollback"),
		RollbackConfig: rollbackConfig(timings.Monitor),
		ConvergeConfig: converge(timings.Converge),
	}, parent, prov, pulumi.DependsOn([]pulumi.Resource{mig}))
	if err != nil {
		return nil, err
	}
	sw.App = app

	// Next to the update: its tasks' errors when it fails (swarm-watch.sh).
	watchTimeout := seconds(timings.Converge + time.Minute)
	watchCmd := sw.Revision.ApplyT(func(rev string) string {
		cmd, _ := on.Script(swarmWatchScript, appName, rev, watchTimeout)
		return cmd
	}).(pulumi.StringOutput)
	watch, err := local.NewCommand(ctx, appName+"-watch", &local.CommandArgs{
		Create:      watchCmd,
		Environment: env,
		Triggers:    pulumi.Array{sw.Revision},
		Logging:     local.LoggingStdoutAndStderr,
	}, parent, pulumi.DependsOn([]pulumi.Resource{mig}))
	if err != nil {
		return nil, err
	}
	sw.Watch = watch

	// Nginx: the same rendered configuration as on engine containers (the app by its DNS name,
	// resolved at run time), as Docker configs; an app deploy changes nothing here. Host-mode
	// ports from at most one task per node; stop-first, since the new task needs the ports.
	nginxName := cfg.Name("nginx")
	proxyArgs := &ProxyArgs{
		Stack: cfg.Stack, BindAddress: cfg.BindAddress, HTTPPort: cfg.HTTPPort, HTTPSPort: cfg.HTTPSPort,
		RateLimit: cfg.RateLimit, TLS: cfg.TLS, Domain: cfg.Domain, UpstreamDNS: ReplicaAlias(cfg.Stack),
	}
	files, err := renderNginx(proxyArgs)
	if err != nil {
		return nil, fmt.Errorf("nginx configuration: %w", err)
	}
	var nginxConfigs docker.ServiceTaskSpecContainerSpecConfigArray
	for _, f := range []string{nginx.MainFile, nginx.SiteFile, nginx.DefaultFile} {
		c, err := res("nginx-" + strings.NewReplacer("/", "-", ".", "-").Replace(f)).config(files[f])
		if err != nil {
			return nil, err
		}
		nginxConfigs = append(nginxConfigs, configFile(c, "/etc/nginx/"+f, "0", 0o444))
	}
	var nginxSecrets docker.ServiceTaskSpecContainerSpecSecretArray
	ports := docker.ServiceEndpointSpecPortArray{hostPort(nginxHTTPPort, cfg.HTTPPort)}
	if cfg.TLS == nginx.TLSProvided {
		cert, err := res("nginx-tls-cert").secret(cfg.TLSCert)
		if err != nil {
			return nil, err
		}
		key, err := res("nginx-tls-key").secret(cfg.TLSKey)
		if err != nil {
			return nil, err
		}
		nginxSecrets = docker.ServiceTaskSpecContainerSpecSecretArray{
			secretFile(cert, nginxTLSCert, "0", 0o444), secretFile(key, nginxTLSKey, "0", 0o400),
		}
		ports = append(ports, hostPort(nginxHTTPSPort, cfg.HTTPSPort))
	}
	ng, err := docker.NewService(ctx, nginxName, &docker.ServiceArgs{
		Name:         pulumi.String(nginxName),
		Labels:       serviceLabels(cfg.Stack, "nginx"),
		Mode:         replicated(1),
		EndpointSpec: docker.ServiceEndpointSpecArgs{Mode: pulumi.String("dnsrr"), Ports: ports},
		TaskSpec: docker.ServiceTaskSpecArgs{
			ContainerSpec: docker.ServiceTaskSpecContainerSpecArgs{
				Image:   pulumi.String(cfg.NginxImage),
				Configs: nginxConfigs,
				Secrets: nginxSecrets,
				Healthcheck: docker.ServiceTaskSpecContainerSpecHealthcheckArgs{
					Tests:       pulumi.ToStringArray(nginxHealthTest),
					Interval:    pulumi.String("5s"),
					Timeout:     pulumi.String("3s"),
					Retries:     pulumi.Int(3),
					StartPeriod: pulumi.String("5s"),
				},
				StopGracePeriod: pulumi.String("30s"),
				Labels:          taskLabels(cfg.Stack, "nginx"),
				Sysctl:          pulumi.StringMap{},
			},
			NetworksAdvanceds: networks,
			Placement: docker.ServiceTaskSpecPlacementArgs{
				Constraints: pulumi.ToStringArray([]string{fmt.Sprintf("node.labels.com.notes-stack.%s.edge==true", cfg.Stack)}),
				MaxReplicas: pulumi.Int(1),
			},
			RestartPolicy: restartAny(),
			LogDriver:     jsonLogs(),
		},
		UpdateConfig:   updateConfig("stop-first", 15*time.Second, "rollback"),
		ConvergeConfig: converge(3 * time.Minute),
	}, parent, prov)
	if err != nil {
		return nil, err
	}
	sw.Nginx = ng

	var backupName string
	if cfg.BackupsEnabled {
		backupName = cfg.Name("backup")
		if sw.Backups, err = newSwarmBackups(ctx, res, cfg, backupName, ownerURL, net.Volumes["backups"], networks,
			placeOnDBNode, append([]pulumi.ResourceOption{parent, prov}, pulumi.DependsOn(append(append([]pulumi.Resource{}, dbReady...), mig)))); err != nil {
			return nil, err
		}
	}

	// The smoke check: the new revision answers through nginx (scripts/smoke.sh, as on engine
	// containers); on failure the app's tasks and their last log lines.
	smokeCmd := sw.Revision.ApplyT(func(rev string) string {
		return swarmSmokeCommand(cfg, on, appName, rev)
	}).(pulumi.StringOutput)
	smoke, err := local.NewCommand(ctx, cfg.Name("smoke", "check"), &local.CommandArgs{
		Create:      smokeCmd,
		Environment: env,
		Triggers:    pulumi.Array{sw.Revision, ng.ID()},
		Logging:     local.LoggingStdoutAndStderr,
	}, parent, pulumi.DependsOn([]pulumi.Resource{app, watch, ng}))
	if err != nil {
		return nil, err
	}
	sw.Smoke = smoke

	exportCommon(ctx, cfg, network, sw.ImageID, sw.Revision)
	ctx.Export("appService", app.Name)
	ctx.Export("nginxService", ng.Name)
	ctx.Export("migrationContainer", migName)
	ctx.Export("nginxConfigHash", pulumi.String(hashFiles(files)))
	if cfg.ExternalDB {
		ctx.Export("databaseHost", dbHost)
	} else {
		ctx.Export("databaseService", dbHost)
	}
	if cfg.BackupsEnabled {
		ctx.Export("backupService", sw.Backups.Name)
		task := fmt.Sprintf("$(docker ps -q -f label=com.docker.swarm.service.name=%s)", backupName)
		ctx.Export("backupNowCommand", pulumi.String("docker exec "+task+" notes-backup now"))
		ctx.Export("restoreCommand", pulumi.String("docker exec "+task+" notes-backup restore <file>"))
	}
	if err := ctx.RegisterResourceOutputs(sw, pulumi.Map{"revision": sw.Revision, "appService": app.Name}); err != nil {
		return nil, err
	}
	return sw, nil
}

// swarmAppSpec is every non-secret app setting outside the image; its hash is part of the
// revision.
type swarmAppSpec struct {
	LogLevel        string
	DrainDelay      string
	ShutdownTimeout string
	MemoryMB        int
	CPUs            string
	StopGrace       string
	Version         int // bump when the service definition changes
}

// newSwarmBackups is the backup service: notes-backup.sh (a Docker config) in the Postgres image,
// the connection in libpq's environment and the password in a .pgpass secret, as on engine
// containers; pinned to the database's node, where the backups volume is.
func newSwarmBackups(ctx *pulumi.Context, res func(string) swarmRes, cfg *Config, name string, ownerURL pulumi.StringOutput,
	volume pulumi.StringOutput, networks docker.ServiceTaskSpecNetworksAdvancedArray, placement []string, opts []pulumi.ResourceOption) (*docker.Service, error) {
	conn := newPGConn(ownerURL)
	pass, err := res("backup-pgpass").secret(conn.passfile())
	if err != nil {
		return nil, err
	}
	script, err := res("backup-script").config([]byte(backupScript))
	if err != nil {
		return nil, err
	}
	env := pulumi.Unsecret(conn.params.ApplyT(func(p map[string]string) map[string]string {
		e := map[string]string{
			"PGPASSFILE":       swarmPGPassFile,
			"BACKUP_DIR":       "/backups",
			"BACKUP_INTERVAL":  strconv.Itoa(int(cfg.BackupInterval.Seconds())),
			"BACKUP_RETENTION": strconv.Itoa(cfg.BackupKeep),
		}
		for _, k := range []string{"PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "PGSSLMODE", "PGCONNECT_TIMEOUT", "PGAPPNAME"} {
			e[k] = p[k]
		}
		return e
	})).(pulumi.StringMapOutput)
	return docker.NewService(ctx, name, &docker.ServiceArgs{
		Name:   pulumi.String(name),
		Labels: serviceLabels(cfg.Stack, "backup"),
		Mode:   replicated(1),
		TaskSpec: docker.ServiceTaskSpecArgs{
			ContainerSpec: docker.ServiceTaskSpecContainerSpecArgs{
				Image:    pulumi.String(cfg.PostgresImage),
				Commands: pulumi.ToStringArray([]string{"/bin/sh", BackupCommand, "loop"}),
				Env:      env,
				Configs:  docker.ServiceTaskSpecContainerSpecConfigArray{configFile(script, BackupCommand, "0", 0o555)},
				Secrets:  docker.ServiceTaskSpecContainerSpecSecretArray{secretFile(pass, swarmPGPassFile, "0", 0o400)},
				Mounts: docker.ServiceTaskSpecContainerSpecMountArray{
					docker.ServiceTaskSpecContainerSpecMountArgs{Type: pulumi.String("volume"), Source: volume, Target: pulumi.String("/backups")},
				},
				CapDrops:        pulumi.ToStringArray([]string{"ALL"}),
				StopGracePeriod: pulumi.String("10s"),
				Labels:          taskLabels(cfg.Stack, "backup"),
				Sysctl:          pulumi.StringMap{},
			},
			NetworksAdvanceds: networks,
			Placement:         docker.ServiceTaskSpecPlacementArgs{Constraints: pulumi.ToStringArray(placement)},
			Resources: docker.ServiceTaskSpecResourcesArgs{Limits: docker.ServiceTaskSpecResourcesLimitsArgs{
				MemoryBytes: pulumi.Int(512 << 20),
			}},
			RestartPolicy: restartAny(),
			LogDriver:     jsonLogs(),
		},
		UpdateConfig:   updateConfig("stop-first", 10*time.Second, "rollback"),
		ConvergeConfig: converge(2 * time.Minute),
	}, opts...)
}

// swarmSmokeCommand asks nginx for the revision (scripts/smoke.sh from the machine running
// Pulumi); when that fails it prints the app's tasks and their last log lines.
func swarmSmokeCommand(cfg *Config, on OnHost, appService, revision string) string {
	attempts := strconv.Itoa(smokeAttempts)
	argv := []string{"sh", "-c", smokeScript, "sh", "curl", cfg.BaseURL() + "/readyz", attempts, revision}
	if cfg.TLS != nginx.TLSOff {
		argv = append(argv, "--insecure")
	}
	if addr, _ := probeFrom(cfg.DockerHost, cfg.BindAddress); addr != "" && addr != cfg.PublicHost() {
		argv = append(argv, "--connect-to", fmt.Sprintf("%s::%s:", bracketIPv6(cfg.PublicHost()), bracketIPv6(addr)))
	}
	ps, _ := on.Docker("service", "ps", "--no-trunc", appService)
	logs, _ := on.Docker("service", "logs", "--tail", "20", appService)
	return shellJoin(argv) + " || { " + ps + "; " + logs + "; exit 1; }"
}

// swarmRes declares the stack's Docker secrets and configs for one role.
type swarmRes struct {
	ctx   *pulumi.Context
	stack string
	role  string
	opts  []pulumi.ResourceOption
}

// secret is a Docker secret with a content-hashed name: a new value is a new secret, created
// (and the services moved to it) before the old one is deleted. The name carries 48 bits of a
// hash of the stack, role and value, not the value.
func (r swarmRes) secret(value pulumi.StringOutput, opts ...pulumi.ResourceOption) (*docker.Secret, error) {
	name := pulumi.Unsecret(value.ApplyT(func(v string) string {
		return objectName(r.stack, r.role, sha256Hex([]byte("notes secret"), []byte(r.stack), []byte(r.role), []byte(v))[:12])
	})).(pulumi.StringOutput)
	data := pulumi.ToSecret(value.ApplyT(func(v string) string {
		return base64.StdEncoding.EncodeToString([]byte(v))
	})).(pulumi.StringOutput)
	return docker.NewSecret(r.ctx, objectName(r.stack, r.role), &docker.SecretArgs{
		Name:   name,
		Data:   data,
		Labels: docker.SecretLabelArray{docker.SecretLabelArgs{Label: pulumi.String("com.notes-stack.stack"), Value: pulumi.String(r.stack)}},
	}, append(append(append([]pulumi.ResourceOption{}, r.opts...), createBeforeDelete), opts...)...)
}

// config is a Docker config (a file that is not secret) with a content-hashed name, replaced
// like secret.
func (r swarmRes) config(content []byte) (*docker.ServiceConfig, error) {
	return docker.NewServiceConfig(r.ctx, objectName(r.stack, r.role), &docker.ServiceConfigArgs{
		Name: pulumi.String(objectName(r.stack, r.role, sha256Hex(content)[:12])),
		Data: pulumi.String(base64.StdEncoding.EncodeToString(content)),
	}, append(append([]pulumi.ResourceOption{}, r.opts...), createBeforeDelete)...)
}

func secretFile(s *docker.Secret, path, uid string, mode int) docker.ServiceTaskSpecContainerSpecSecretArgs {
	return docker.ServiceTaskSpecContainerSpecSecretArgs{
		SecretId: s.ID(), SecretName: s.Name, FileName: pulumi.String(path),
		FileUid: pulumi.String(uid), FileGid: pulumi.String(uid), FileMode: pulumi.Int(mode),
	}
}

func configFile(c *docker.ServiceConfig, path, uid string, mode int) docker.ServiceTaskSpecContainerSpecConfigArgs {
	return docker.ServiceTaskSpecContainerSpecConfigArgs{
		ConfigId: c.ID(), ConfigName: c.Name, FileName: pulumi.String(path),
		FileUid: pulumi.String(uid), FileGid: pulumi.String(uid), FileMode: pulumi.Int(mode),
	}
}

// tmpfsMount is a tmpfs at target. Without a size: the provider (4.10) panics on
// tmpfsOptions.sizeBytes (an int read as int64); the pages count against the task's memory
// limit anyway.
func tmpfsMount(target string) docker.ServiceTaskSpecContainerSpecMountArgs {
	return docker.ServiceTaskSpecContainerSpecMountArgs{Type: pulumi.String("tmpfs"), Target: pulumi.String(target)}
}

// hostPort publishes target on published of the task's node (host mode: no ingress mesh, which
// needs IPVS).
func hostPort(target, published int) docker.ServiceEndpointSpecPortArgs {
	return docker.ServiceEndpointSpecPortArgs{
		TargetPort: pulumi.Int(target), PublishedPort: pulumi.Int(published),
		PublishMode: pulumi.String("host"), Protocol: pulumi.String("tcp"),
	}
}

// swarmDuration is d as the provider reads durations back ("1m", not Go's "1m0s"), so an
// unchanged value shows no diff.
func swarmDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func replicated(n int) docker.ServiceModeArgs {
	return docker.ServiceModeArgs{Replicated: docker.ServiceModeReplicatedArgs{Replicas: pulumi.Int(n)}}
}

func updateConfig(order string, monitor time.Duration, failure string) docker.ServiceUpdateConfigArgs {
	return docker.ServiceUpdateConfigArgs{
		Parallelism: pulumi.Int(1), Order: pulumi.String(order), FailureAction: pulumi.String(failure),
		Monitor: pulumi.String(swarmDuration(monitor)), Delay: pulumi.String("1s"), MaxFailureRatio: pulumi.String("0.0"),
	}
}

func rollbackConfig(monitor time.Duration) docker.ServiceRollbackConfigArgs {
	return docker.ServiceRollbackConfigArgs{
		Parallelism: pulumi.Int(1), Order: pulumi.String("start-first"), FailureAction: pulumi.String("pause"),
		Monitor: pulumi.String(swarmDuration(monitor)), Delay: pulumi.String("1s"), MaxFailureRatio: pulumi.String("0.0"),
	}
}

func converge(timeout time.Duration) docker.ServiceConvergeConfigArgs {
	return docker.ServiceConvergeConfigArgs{Delay: pulumi.String("2s"), Timeout: pulumi.String(swarmDuration(timeout))}
}

func restartAny() docker.ServiceTaskSpecRestartPolicyArgs {
	return docker.ServiceTaskSpecRestartPolicyArgs{Condition: pulumi.String("any"), Delay: pulumi.String("2s"), Window: pulumi.String("0s")}
}

func jsonLogs() docker.ServiceTaskSpecLogDriverArgs {
	return docker.ServiceTaskSpecLogDriverArgs{Name: pulumi.String("json-file"), Options: logOpts()}
}

func serviceLabels(stack, role string) docker.ServiceLabelArray {
	return docker.ServiceLabelArray{
		docker.ServiceLabelArgs{Label: pulumi.String("com.notes-stack.stack"), Value: pulumi.String(stack)},
		docker.ServiceLabelArgs{Label: pulumi.String("com.notes-stack.role"), Value: pulumi.String(role)},
	}
}

// taskLabels are on every task's container, as on engine containers' containers. They never
// change: the provider replaces a service (delete first: the name is fixed) when its tasks'
// labels or sysctls change, and reads an unset sysctl as unknown in a preview, which also
// counts as a change; every container spec therefore sets Sysctl to an empty map.
func taskLabels(stack, role string) docker.ServiceTaskSpecContainerSpecLabelArray {
	return docker.ServiceTaskSpecContainerSpecLabelArray{
		docker.ServiceTaskSpecContainerSpecLabelArgs{Label: pulumi.String("com.notes-stack.stack"), Value: pulumi.String(stack)},
		docker.ServiceTaskSpecContainerSpecLabelArgs{Label: pulumi.String("com.notes-stack.role"), Value: pulumi.String(role)},
	}
}
