package main

import (
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

// swarmDB is the database as the other phases see it: Postgres as a service of the stack or the
// external databaseUrl.
type swarmDB struct {
	service  *docker.Service // nil with an external database
	ready    []pulumi.Resource
	host     pulumi.StringOutput
	ownerURL pulumi.StringOutput // secret
	appURL   pulumi.StringOutput // secret
}

// database is phase database: Postgres, one task pinned to the labelled node with its volume,
// updated stop-first (two postmasters cannot share a data directory), and the owner's password
// applied on every change of it.
func (d *swarmDeploy) database() (swarmDB, error) {
	cfg := d.cfg
	if cfg.ExternalDB {
		return swarmDB{
			ownerURL: cfg.DatabaseURL,
			appURL: pulumi.All(cfg.DatabaseURL, cfg.AppDBPassword).ApplyT(func(v []any) (string, error) {
				return withUser(v[0].(string), AppRole, v[1].(string))
			}).(pulumi.StringOutput),
			host: pulumi.Unsecret(cfg.DatabaseURL.ApplyT(func(s string) (string, error) {
				u, err := pgEnv(s)
				if err != nil {
					return "", err
				}
				return u["PGHOST"], nil
			})).(pulumi.StringOutput),
		}, nil
	}
	dbName := cfg.Name("db")
	// The owner's password is only read when the data directory is first initialised: the
	// secret keeps its first value (a rotation is the ALTER ROLE below), so a new password
	// neither restarts Postgres nor deletes a secret in use.
	initPW, err := d.res("db-init-password").secret(cfg.DBPassword, pulumi.IgnoreChanges([]string{"data", "name"}))
	if err != nil {
		return swarmDB{}, err
	}
	db, err := docker.NewService(d.ctx, dbName, &docker.ServiceArgs{
		Name:         pulumi.String(dbName),
		Labels:       serviceLabels(cfg.Stack, "db"),
		Mode:         replicated(1),
		EndpointSpec: docker.ServiceEndpointSpecArgs{Mode: pulumi.String("dnsrr")},
		TaskSpec: docker.ServiceTaskSpecArgs{
			ContainerSpec: docker.ServiceTaskSpecContainerSpecArgs{
				Image: pulumi.String(cfg.PostgresImage),
				Args:  pulumi.ToStringArray(postgresCommand(cfg.DBMaxConnections)),
				Env: pulumi.StringMap{
					"POSTGRES_USER":          pulumi.String(cfg.DBOwner),
					"POSTGRES_DB":            pulumi.String(cfg.DBName),
					"POSTGRES_PASSWORD_FILE": pulumi.String(dbPasswordFile),
				},
				Secrets: docker.ServiceTaskSpecContainerSpecSecretArray{
					secretFile(initPW, dbPasswordFile, postgresUID, 0o400),
				},
				Mounts: docker.ServiceTaskSpecContainerSpecMountArray{
					docker.ServiceTaskSpecContainerSpecMountArgs{Type: pulumi.String("volume"), Source: d.net.Volumes["pgdata"], Target: pulumi.String("/var/lib/postgresql/data")},
					tmpfsMount("/dev/shm"),
				},
				// Swarm's DNS lists a task only once it is healthy: after a restart the replicas
				// find Postgres up to one interval after it accepts connections (the provider
				// has no start interval, which would check often only until the first success).
				Healthcheck: docker.ServiceTaskSpecContainerSpecHealthcheckArgs{
					Tests:       pulumi.ToStringArray(postgresHealthTest(cfg.DBOwner, cfg.DBName)),
					Interval:    pulumi.String(swarmDuration(cfg.DBHealthInterval)),
					Timeout:     pulumi.String("3s"),
					Retries:     pulumi.Int(dbHealthRetries(cfg.DBHealthInterval)),
					StartPeriod: pulumi.String("1m"), // as the provider reads it back
				},
				StopGracePeriod: pulumi.String("1m"),
				Labels:          taskLabels(cfg.Stack, "db"),
				Sysctl:          pulumi.StringMap{},
			},
			NetworksAdvanceds: d.dataNets,
			Placement:         docker.ServiceTaskSpecPlacementArgs{Constraints: pulumi.ToStringArray(d.placeOnDBNode())},
			// A new limit is a service update: the database task restarts once.
			Resources: docker.ServiceTaskSpecResourcesArgs{Limits: docker.ServiceTaskSpecResourcesLimitsArgs{
				MemoryBytes: pulumi.Int(cfg.DBMemoryMB << 20),
			}},
			RestartPolicy: restartAny(),
			LogDriver:     jsonLogs(),
		},
		UpdateConfig:   updateConfig("stop-first", 30*time.Second, "pause"),
		ConvergeConfig: converge(5 * time.Minute),
	}, d.opts(pulumi.Protect(cfg.Protect))...)
	if err != nil {
		return swarmDB{}, err
	}
	// psql in the database's task on the manager (swarm-db-password.sh finds it).
	pwCmd, pwEnv := d.on.Script(swarmDBPasswordScript, dbName, cfg.DBOwner, cfg.DBName)
	pw, err := newPasswordCommand(d.ctx, dbName+"-password", pwCmd, pwEnv, cfg.DBOwner, cfg.DBPassword,
		d.parent, pulumi.DependsOn([]pulumi.Resource{db}))
	if err != nil {
		return swarmDB{}, err
	}
	// The service's name, known before it exists: a preview of a database update leaves the
	// URLs (and the services that use them) known.
	return swarmDB{
		service: db,
		ready:   []pulumi.Resource{db, pw},
		host:    pulumi.String(dbName).ToStringOutput(),
		ownerURL: cfg.DBPassword.ApplyT(func(p string) string {
			return pgURL(dbName, cfg.DBName, cfg.DBOwner, p)
		}).(pulumi.StringOutput),
		appURL: cfg.AppDBPassword.ApplyT(func(p string) string {
			return pgURL(dbName, cfg.DBName, AppRole, p)
		}).(pulumi.StringOutput),
	}, nil
}

// swarmApp is the app side of a deploy: image, revision, migration, service and its watcher.
type swarmApp struct {
	imageID       pulumi.StringOutput
	image         pulumi.StringOutput // what the tasks run: the tag, or with a registry tag@digest
	revision      pulumi.StringOutput
	migrationName pulumi.StringOutput
	migration     *local.Command
	service       *docker.Service
	watch         *local.Command
}

// app is phases build, migrate and roll out. The image is built on the manager's daemon, as on
// engine containers; the migrate job runs scripts/migrate.sh in a throwaway container on the
// attachable overlay network, and the app service's spec changes only after it exited 0. Swarm
// then replaces one task at a time, starting the new one first and stopping the old one once the
// new one is healthy; a task that does not turn healthy within the monitor window rolls the
// update back.
func (d *swarmDeploy) app(host *Host, build BuildContext, db swarmDB, reg ownRegistry) (swarmApp, error) {
	cfg, on := d.cfg, d.on
	var a swarmApp
	appName := cfg.Name("app")
	registry := cfg.ImageRegistry() != ""
	buildCmd, buildEnv := buildCommand(on, build.Files, cfg.ImageRef(), cfg.GoImage, cfg.AppVersion, registry)
	img, err := local.NewCommand(d.ctx, appName+"-image", &local.CommandArgs{
		Create:      pulumi.String(buildCmd),
		Environment: buildEnv,
		Dir:         pulumi.String(build.Dir),
		Triggers: pulumi.Array{
			pulumi.String(build.Digest), pulumi.String(cfg.GoImage), pulumi.String(cfg.AppVersion),
			pulumi.String(cfg.ImageRef()), pulumi.String(cfg.DockerHost.String()),
		},
		Logging: local.LoggingStderr,
	}, d.parent, pulumi.DependsOn(append(append([]pulumi.Resource{}, host.Ready...), reg.push...)))
	if err != nil {
		return a, err
	}
	a.imageID = img.Stdout.ApplyT(parseImageID).(pulumi.StringOutput)
	// With a registry the tasks reference the image by its digest: every node pulls exactly
	// the image built here, whatever the tag points at later.
	a.image = pulumi.String(cfg.ImageRef()).ToStringOutput()
	if registry {
		digestCmd, _ := on.Script(swarmDigestScript, cfg.ImageRef())
		dg, err := local.NewCommand(d.ctx, appName+"-digest", &local.CommandArgs{
			Create:      pulumi.String(digestCmd),
			Environment: d.env,
			Triggers:    pulumi.Array{a.imageID},
			Logging:     local.LoggingStderr,
		}, d.parent, pulumi.DependsOn([]pulumi.Resource{img}))
		if err != nil {
			return a, err
		}
		a.image = dg.Stdout.ApplyT(strings.TrimSpace).(pulumi.StringOutput)
	}

	appSecret, err := d.res("app-database-url").secret(db.appURL)
	if err != nil {
		return a, err
	}
	secrets := docker.ServiceTaskSpecContainerSpecSecretArray{secretFile(appSecret, databaseURLFile, strconv.Itoa(serviceUID), 0o400)}
	// The secrets' names hold a hash of their values: part of the revision.
	secretNames := pulumi.StringArray{appSecret.Name}
	if cfg.WriteAuth != WriteAuthNone {
		tokens, err := d.res("app-api-tokens").secret(cfg.APITokensFile())
		if err != nil {
			return a, err
		}
		secrets = append(secrets, secretFile(tokens, apiTokensFile, strconv.Itoa(serviceUID), 0o400))
		secretNames = append(secretNames, tokens.Name)
	}
	linger := newRetireTimings(cfg.DrainWait(), nginxDNSValid()).Linger
	timings := newSwarmTimings(cfg.StartTimeout, cfg.DrainWait(), linger, cfg.Replicas)
	spec := swarmAppSpec{
		LogLevel: cfg.LogLevel, DrainDelay: cfg.DrainDelay.String(), ShutdownTimeout: cfg.ShutdownTimeout.String(),
		MemoryMB: cfg.ServiceMemoryMB, CPUs: cfg.ServiceCPUs, StopGrace: timings.StopGrace.String(), DBMaxConns: cfg.DBPoolSize, Version: 1,
	}
	specJSON, err := json.Marshal(spec)
	if err != nil {
		return a, err
	}
	// The revision (X-Notes-Revision): a hash of everything a task runs, so an unchanged up
	// keeps it and any change (image, settings, the secrets, the network) gives a new one, which
	// re-runs the migration and rolls the tasks.
	a.revision = pulumi.Unsecret(pulumi.All(a.imageID, secretNames, db.ownerURL, d.net.Subnets).ApplyT(func(v []any) string {
		return sha256Hex([]byte(cfg.ImageRef()), []byte(v[0].(string)), specJSON, []byte(strings.Join(v[1].([]string), ",")),
			[]byte(v[2].(string)), []byte(v[3].(string)))[:8]
	})).(pulumi.StringOutput)

	a.migrationName = pulumi.Sprintf("%s-%s", objectName(cfg.Stack, "migrate"), a.revision)
	migArgs := &AppArgs{Stack: cfg.Stack, AppVersion: cfg.AppVersion, LogLevel: cfg.LogLevel, MemoryMB: cfg.ServiceMemoryMB, CPUs: cfg.DockerCPUs()}
	migCmd := pulumi.All(a.migrationName, a.imageID, d.net.Data.Name).ApplyT(func(v []any) string {
		cmd, _ := on.Script(migrateScript, append([]string{v[0].(string), v[1].(string)}, migrateOptions(migArgs, v[2].(string))...)...)
		return cmd
	}).(pulumi.StringOutput)
	_, migEnv := on.Script(migrateScript)
	a.migration, err = local.NewCommand(d.ctx, appName+"-migrate", &local.CommandArgs{
		Create:      migCmd,
		Environment: migEnv,
		Stdin: pulumi.ToSecret(pulumi.All(db.ownerURL, cfg.AppDBPassword).ApplyT(func(v []any) (string, error) {
			return secretTarBase64(map[string][]byte{
				strings.TrimPrefix(databaseURLFile, "/"): []byte(v[0].(string)),
				strings.TrimPrefix(appPasswordFile, "/"): []byte(v[1].(string)),
			}, serviceUID)
		})).(pulumi.StringOutput),
		Triggers: pulumi.Array{a.revision},
		Logging:  local.LoggingStdoutAndStderr,
	}, d.parent, pulumi.DependsOn(append([]pulumi.Resource{d.net}, db.ready...)))
	if err != nil {
		return a, err
	}

	cpus, err := strconv.ParseFloat(cfg.ServiceCPUs, 64)
	if err != nil {
		return a, fmt.Errorf("config notes:serviceCpus: %w", err)
	}
	env := pulumi.StringMap{
		"DATABASE_URL_FILE": pulumi.String(databaseURLFile),
		"NOTES_REVISION":    a.revision,
		"HTTP_ADDR":         pulumi.String(":8080"),
		"LOG_LEVEL":         pulumi.String(cfg.LogLevel),
		"LOG_FORMAT":        pulumi.String("json"),
		"DRAIN_DELAY":       pulumi.String(cfg.DrainDelay.String()),
		"SHUTDOWN_TIMEOUT":  pulumi.String(cfg.ShutdownTimeout.String()),
		"SHUTDOWN_LINGER":   pulumi.String(linger.String()),
		"WRITE_AUTH":        pulumi.String(cfg.WriteAuth),
		"TRUSTED_PROXIES":   d.net.Subnets,
		"DB_MAX_CONNS":      pulumi.String(strconv.Itoa(cfg.DBPoolSize)),
	}
	if cfg.WriteAuth != WriteAuthNone {
		env["API_TOKENS_FILE"] = pulumi.String(apiTokensFile)
	}
	a.service, err = docker.NewService(d.ctx, appName, &docker.ServiceArgs{
		Name:   pulumi.String(appName),
		Labels: serviceLabels(cfg.Stack, "app"),
		Mode:   replicated(cfg.Replicas),
		// Docker's DNS answers the service name with every task's address: nginx resolves
		// it at run time, as it resolves the replicas' alias on engine containers.
		EndpointSpec: docker.ServiceEndpointSpecArgs{Mode: pulumi.String("dnsrr")},
		TaskSpec: docker.ServiceTaskSpecArgs{
			ContainerSpec: docker.ServiceTaskSpecContainerSpecArgs{
				Image:    a.image,
				Args:     pulumi.ToStringArray([]string{"serve"}),
				User:     pulumi.String(serviceUser),
				Env:      env,
				Secrets:  secrets,
				ReadOnly: pulumi.Bool(true),
				Mounts:   docker.ServiceTaskSpecContainerSpecMountArray{tmpfsMount("/tmp")},
				CapDrops: pulumi.ToStringArray([]string{"ALL"}),
				Healthcheck: docker.ServiceTaskSpecContainerSpecHealthcheckArgs{
					Tests:       pulumi.ToStringArray(appHealthTest),
					Interval:    pulumi.String(swarmDuration(appHealthInterval)),
					Timeout:     pulumi.String(appHealthTimeout),
					Retries:     pulumi.Int(appHealthRetries),
					StartPeriod: pulumi.String("10s"),
				},
				StopSignal:      pulumi.String("SIGTERM"),
				StopGracePeriod: pulumi.String(swarmDuration(timings.StopGrace)),
				Labels:          taskLabels(cfg.Stack, "app"),
				Sysctl:          pulumi.StringMap{},
			},
			NetworksAdvanceds: d.appNets,
			Placement:         appPlacement(cfg),
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
	}, d.opts(pulumi.DependsOn(append([]pulumi.Resource{a.migration}, reg.pull...)))...)
	if err != nil {
		return a, err
	}

	// Next to the update: its tasks' errors when it fails (swarm-watch.sh).
	watchTimeout := seconds(timings.Converge + time.Minute)
	watchCmd := a.revision.ApplyT(func(rev string) string {
		cmd, _ := on.Script(swarmWatchScript, appName, rev, watchTimeout)
		return cmd
	}).(pulumi.StringOutput)
	a.watch, err = local.NewCommand(d.ctx, appName+"-watch", &local.CommandArgs{
		Create:      watchCmd,
		Environment: d.env,
		Triggers:    pulumi.Array{a.revision},
		Logging:     local.LoggingStdoutAndStderr,
	}, d.parent, pulumi.DependsOn([]pulumi.Resource{a.migration}))
	return a, err
}

// nginx is the front door: the same rendered configuration as on engine containers (the app by
// its DNS name, resolved at run time), as Docker configs; an app deploy changes nothing here.
// Host-mode ports from at most one task per node; stop-first, since the new task needs the
// ports. It returns the service and the hash of the rendered files; with tls=acme it sets
// d.smokeTrust.
func (d *swarmDeploy) nginx() (*docker.Service, string, error) {
	cfg := d.cfg
	nginxName := cfg.Name("nginx")
	files, err := renderNginx(&ProxyArgs{
		Stack: cfg.Stack, BindAddress: cfg.BindAddress, HTTPPort: cfg.HTTPPort, HTTPSPort: cfg.HTTPSPort,
		RateLimit: cfg.RateLimit, AuthMethods: cfg.AuthMethods(), TLS: cfg.TLS, Domain: cfg.Domain,
		UpstreamDNS: cfg.Name("app"), // the app service's name: its tasks' addresses (dnsrr)
	})
	if err != nil {
		return nil, "", fmt.Errorf("nginx configuration: %w", err)
	}
	var configs docker.ServiceTaskSpecContainerSpecConfigArray
	for _, f := range []string{nginx.MainFile, nginx.SiteFile, nginx.DefaultFile} {
		c, err := d.res("nginx-" + strings.NewReplacer("/", "-", ".", "-").Replace(f)).config(files[f])
		if err != nil {
			return nil, "", err
		}
		configs = append(configs, configFile(c, "/etc/nginx/"+f, "0", 0o444))
	}
	var secrets docker.ServiceTaskSpecContainerSpecSecretArray
	var mounts docker.ServiceTaskSpecContainerSpecMountArray
	var env pulumi.StringMap
	ports := docker.ServiceEndpointSpecPortArray{hostPort(nginxHTTPPort, cfg.HTTPPort)}
	if cfg.TLS == nginx.TLSACME {
		acme, err := d.nginxACME()
		if err != nil {
			return nil, "", err
		}
		configs = append(configs, acme.configs...)
		secrets, mounts, env, d.smokeTrust = acme.secrets, acme.mounts, acme.env, acme.trust
		ports = append(ports, hostPort(nginxHTTPSPort, cfg.HTTPSPort))
	}
	if cfg.TLS == nginx.TLSProvided {
		cert, err := d.res("nginx-tls-cert").secret(cfg.TLSCert)
		if err != nil {
			return nil, "", err
		}
		key, err := d.res("nginx-tls-key").secret(cfg.TLSKey)
		if err != nil {
			return nil, "", err
		}
		secrets = docker.ServiceTaskSpecContainerSpecSecretArray{
			secretFile(cert, nginxTLSCert, "0", 0o444), secretFile(key, nginxTLSKey, fmt.Sprint(nginxUID), 0o400),
		}
		ports = append(ports, hostPort(nginxHTTPSPort, cfg.HTTPSPort))
	}
	ng, err := docker.NewService(d.ctx, nginxName, &docker.ServiceArgs{
		Name:   pulumi.String(nginxName),
		Labels: serviceLabels(cfg.Stack, "nginx"),
		// One task per edge node (at most one per node, below): what global mode does, but a
		// replicated service grows from one host to several in place (a change of mode
		// would replace it).
		Mode:         replicated(cfg.EdgeNodes()),
		EndpointSpec: docker.ServiceEndpointSpecArgs{Mode: pulumi.String("dnsrr"), Ports: ports},
		TaskSpec: docker.ServiceTaskSpecArgs{
			ContainerSpec: docker.ServiceTaskSpecContainerSpecArgs{
				Image:   pulumi.String(cfg.NginxImage),
				Configs: configs,
				Secrets: secrets,
				Mounts:  append(mounts, tmpfsMounts(nginxTmpfs)...),
				Env:     env,
				// As on engine containers: nginx's own user, no capability, read-only root.
				User:     pulumi.String(nginxUser),
				ReadOnly: pulumi.Bool(true),
				CapDrops: pulumi.ToStringArray([]string{"ALL"}),
				Healthcheck: docker.ServiceTaskSpecContainerSpecHealthcheckArgs{
					Tests:       pulumi.ToStringArray(nginxHealthTest),
					Interval:    pulumi.String("5s"),
					Timeout:     pulumi.String("3s"),
					Retries:     pulumi.Int(3),
					StartPeriod: pulumi.String("5s"),
				},
				StopGracePeriod: pulumi.String("30s"),
				Labels:          taskLabels(cfg.Stack, "nginx"),
				Sysctl:          pulumi.ToStringMap(unprivilegedPorts),
			},
			NetworksAdvanceds: d.nginxNets,
			Placement: docker.ServiceTaskSpecPlacementArgs{
				Constraints: pulumi.ToStringArray(d.placeOnEdgeNode()),
				MaxReplicas: pulumi.Int(1),
			},
			Resources: docker.ServiceTaskSpecResourcesArgs{Limits: docker.ServiceTaskSpecResourcesLimitsArgs{
				MemoryBytes: pulumi.Int(nginxMemoryMB << 20),
			}},
			RestartPolicy: restartAny(),
			LogDriver:     jsonLogs(),
		},
		UpdateConfig:   updateConfig("stop-first", 15*time.Second, "rollback"),
		ConvergeConfig: converge(3 * time.Minute),
	}, d.opts()...)
	if err != nil {
		return nil, "", err
	}
	return ng, hashFiles(files), nil
}

// appPlacement spreads the app's tasks over the nodes (by node id, at most maxReplicasPerNode on
// one); none on one host without a limit, where there is nothing to spread.
func appPlacement(cfg *Config) docker.ServiceTaskSpecPlacementPtrInput {
	if !cfg.Clustered() && cfg.MaxReplicasPerNode == 0 {
		return nil
	}
	p := docker.ServiceTaskSpecPlacementArgs{Prefs: pulumi.ToStringArray([]string{"spread=node.id"})}
	if cfg.MaxReplicasPerNode > 0 {
		p.MaxReplicas = pulumi.Int(cfg.MaxReplicasPerNode)
	}
	return p
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
	DBMaxConns      int
	Version         int // bump when the service definition changes
}

// backups is the backup service: notes-backup.sh (a Docker config) in the Postgres image, the
// connection in libpq's environment and the password in a .pgpass secret, as on engine
// containers; pinned to the database's node, where the backups volume is. It starts after
// after (the database and this deploy's migration).
func (d *swarmDeploy) backups(ownerURL pulumi.StringOutput, after []pulumi.Resource) (*docker.Service, error) {
	cfg := d.cfg
	name := cfg.Name("backup")
	conn := newPGConn(ownerURL)
	pass, err := d.res("backup-pgpass").secret(conn.passfile())
	if err != nil {
		return nil, err
	}
	script, err := d.res("backup-script").config([]byte(backupScript))
	if err != nil {
		return nil, err
	}
	env := pulumi.Unsecret(conn.params.ApplyT(func(p map[string]string) map[string]string {
		e := map[string]string{
			"PGPASSFILE":       swarmPGPassFile,
			"BACKUP_DIR":       "/backups",
			"BACKUP_INTERVAL":  strconv.Itoa(int(cfg.BackupInterval.Seconds())),
			"BACKUP_RETENTION": strconv.Itoa(cfg.BackupKeep),
			"BACKUP_VERIFY":    backupVerifyEnv(cfg.BackupVerify),
		}
		for _, k := range []string{"PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "PGSSLMODE", "PGCONNECT_TIMEOUT", "PGAPPNAME"} {
			e[k] = p[k]
		}
		return e
	})).(pulumi.StringMapOutput)
	return docker.NewService(d.ctx, name, &docker.ServiceArgs{
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
					docker.ServiceTaskSpecContainerSpecMountArgs{Type: pulumi.String("volume"), Source: d.net.Volumes["backups"], Target: pulumi.String("/backups")},
				},
				CapDrops: pulumi.ToStringArray([]string{"ALL"}),
				// The provider's delete waits this long for the task's container to be gone, and
				// fails the destroy after it: 10 s was too short on a loaded host (seen in the
				// e2e suite), though the script exits on SIGTERM.
				StopGracePeriod: pulumi.String("30s"),
				// As on engine containers. Swarm restarts a task that turns unhealthy: the new one
				// dumps at once (its newest good dump is older than the interval), a retry of its own.
				Healthcheck: docker.ServiceTaskSpecContainerSpecHealthcheckArgs{
					Tests:       pulumi.ToStringArray(backupHealthTest),
					Interval:    pulumi.String(swarmDuration(backupHealthInterval)),
					Timeout:     pulumi.String(swarmDuration(backupHealthTimeout)),
					Retries:     pulumi.Int(backupHealthRetries),
					StartPeriod: pulumi.String(swarmDuration(backupHealthInterval)),
				},
				Labels: taskLabels(cfg.Stack, "backup"),
				Sysctl: pulumi.StringMap{},
			},
			NetworksAdvanceds: d.dataNets,
			Placement:         docker.ServiceTaskSpecPlacementArgs{Constraints: pulumi.ToStringArray(d.placeOnDBNode())},
			Resources: docker.ServiceTaskSpecResourcesArgs{Limits: docker.ServiceTaskSpecResourcesLimitsArgs{
				MemoryBytes: pulumi.Int(512 << 20),
			}},
			RestartPolicy: restartAny(),
			LogDriver:     jsonLogs(),
		},
		UpdateConfig:   updateConfig("stop-first", 10*time.Second, "rollback"),
		ConvergeConfig: converge(2 * time.Minute),
	}, d.opts(pulumi.DependsOn(after))...)
}

// smoke is the smoke check: the new revision answers through nginx (scripts/smoke.sh, as on
// engine containers); on failure the app's tasks and their last log lines.
func (d *swarmDeploy) smoke(app swarmApp, ng *docker.Service) (*local.Command, error) {
	cmd := app.revision.ApplyT(func(rev string) string {
		return swarmSmokeCommand(d.cfg, d.on, d.cfg.Name("app"), rev)
	}).(pulumi.StringOutput)
	env := d.env
	switch d.cfg.TLS {
	case nginx.TLSProvided:
		// curl verifies nginx's certificate against the provided chain.
		env = withSmokeTrust(d.env, d.cfg.TLSCert)
	case nginx.TLSACME:
		env = withSmokeTrust(d.env, d.smokeTrust)
	}
	return local.NewCommand(d.ctx, d.cfg.Name("smoke", "check"), &local.CommandArgs{
		Create:      cmd,
		Environment: env,
		Triggers:    pulumi.Array{app.revision, ng.ID()},
		Logging:     local.LoggingStdoutAndStderr,
	}, d.parent, pulumi.DependsOn([]pulumi.Resource{app.service, app.watch, ng}))
}

// swarmSmokeCommand asks nginx for the revision (scripts/smoke.sh from the machine running
// Pulumi); when that fails it prints the app's tasks and their last log lines.
func swarmSmokeCommand(cfg *Config, on OnHost, appService, revision string) string {
	attempts := strconv.Itoa(smokeAttempts)
	argv := []string{"sh", "-c", smokeScript, "sh", "curl", cfg.BaseURL() + "/readyz", attempts, revision}
	if addr, _ := probeFrom(cfg.DockerHost, cfg.BindAddress); addr != "" && addr != cfg.PublicHost() {
		argv = append(argv, "--connect-to", fmt.Sprintf("%s::%s:", bracketIPv6(cfg.PublicHost()), bracketIPv6(addr)))
	}
	ps, _ := on.Docker("service", "ps", "--no-trunc", appService)
	logs, _ := on.Docker("service", "logs", "--tail", "20", appService)
	return shellJoin(argv) + " || { " + ps + "; " + logs + "; exit 1; }"
}
