package main

import (
	"github.com/notes-stack/notes/nginx"
	"github.com/pulumi/pulumi-command/sdk/go/command/local"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// Stack is the whole deployment, wired from the components.
type Stack struct {
	Engine   *local.Command // the engine guard (engine.go)
	DBMajor  *local.Command // the Postgres major guard (database.go); nil with an external database
	Host     *Host
	Network  *Network
	Database *Database
	App      *App
	Proxy    *Proxy
	Backups  *Backups // nil unless backups=true
	Smoke    *Smoke
	Retire   *local.Command
	// Swarm is the whole stack on engine swarm (swarm.go); the fields above it but Engine,
	// DBMajor and Host are nil then.
	Swarm *Swarm
}

// NewStack is the one place that turns the configuration into the components' Args; it creates
// every component in deploy order (build, migrate, roll out, smoke, retire) and exports the
// stack outputs.
func NewStack(ctx *pulumi.Context, cfg *Config) (*Stack, error) {
	buildContext, err := LoadBuildContext()
	if err != nil {
		return nil, err
	}
	s := &Stack{}
	if s.Engine, err = newEngineGuard(ctx, cfg.Name("engine"), cfg.Engine); err != nil {
		return nil, err
	}
	guards := []pulumi.Resource{s.Engine}
	if !cfg.ExternalDB {
		major, _ := postgresMajor(cfg.PostgresImage) // validated in LoadConfig
		if s.DBMajor, err = newDBMajorGuard(ctx, cfg.Name("db-major"), major, pulumi.DependsOn([]pulumi.Resource{s.Engine})); err != nil {
			return nil, err
		}
		guards = append(guards, s.DBMajor)
	}
	if s.Host, err = NewHost(ctx, cfg.Name("host"), &HostArgs{
		DockerHost: cfg.DockerHost,
		SSHOpts:    cfg.SSHOpts,
		Bootstrap:  cfg.Bootstrap,
		TLS:        cfg.DockerTLS,
		After:      guards,
	}); err != nil {
		return nil, err
	}
	if cfg.Engine == EngineSwarm {
		s.Swarm, err = NewSwarm(ctx, cfg, s.Host, buildContext)
		return s, err
	}
	prov, onHost := s.Host.Provider, s.Host.OnHost
	orphans, err := newOrphanHook(ctx, cfg.Name("orphans"), onHost)
	if err != nil {
		return nil, err
	}
	// Everything that talks to the host goes through the provider, which waits for the
	// bootstrap; the components depend on the Host component too.
	after := pulumi.DependsOn([]pulumi.Resource{s.Host})

	var volumes []string
	if !cfg.ExternalDB {
		volumes = append(volumes, "pgdata")
	}
	if cfg.BackupsEnabled {
		volumes = append(volumes, "backups")
	}
	if cfg.TLS == nginx.TLSACME {
		volumes = append(volumes, "letsencrypt", "acme-webroot")
	}
	if s.Network, err = NewNetwork(ctx, cfg.Name("net"), &NetworkArgs{
		Stack: cfg.Stack, Provider: prov, Volumes: volumes, DriverOpts: cfg.VolumeDriverOpts, Protect: cfg.Protect,
		DataReachable: cfg.DBPort != 0,
	}, after); err != nil {
		return nil, err
	}
	network := s.Network.Network.Name // edge
	appNet, dataNet := s.Network.App.Name, s.Network.Data.Name

	dbArgs := &DatabaseArgs{
		Stack: cfg.Stack, Provider: prov, OnHost: onHost, Orphans: orphans,
		ExternalURL: cfg.DatabaseURL, External: cfg.ExternalDB,
		Image: cfg.PostgresImage, Network: dataNet, EdgeNetwork: network, DataVolume: s.Network.Volumes["pgdata"],
		Port: cfg.DBPort, BindAddress: cfg.BindAddress,
		Name: cfg.DBName, Owner: cfg.DBOwner, Password: cfg.DBPassword, AppPassword: cfg.AppDBPassword,
		Protect:        cfg.Protect,
		MaxConnections: cfg.DBMaxConnections,
		MemoryMB:       cfg.DBMemoryMB,
		HealthInterval: cfg.DBHealthInterval,
	}
	if s.Database, err = NewDatabase(ctx, cfg.Name("db"), dbArgs, after); err != nil {
		return nil, err
	}

	proxyArgs := &ProxyArgs{
		Stack: cfg.Stack, Provider: prov, OnHost: onHost, HostReady: s.Host.Ready, Orphans: orphans,
		Image: cfg.NginxImage, Network: network, AppNetwork: appNet, BindAddress: cfg.BindAddress,
		HTTPPort: cfg.HTTPPort, HTTPSPort: cfg.HTTPSPort, RateLimit: cfg.RateLimit,
		AuthMethods: cfg.AuthMethods(),
		TLS:         cfg.TLS, Domain: cfg.Domain, TLSCert: cfg.TLSCert, TLSKey: cfg.TLSKey,
		UpstreamDNS: ReplicaAlias(cfg.Stack), DrainDelay: cfg.DrainDelay,
	}
	if cfg.TLS == nginx.TLSACME {
		proxyArgs.ACME = ACMEArgs{
			Email: cfg.ACMEEmail, Server: cfg.ACMEDirectory(), CABundle: cfg.ACMECABundle, CertbotImage: cfg.CertbotImage,
			LetsEncrypt: s.Network.Volumes["letsencrypt"], Webroot: s.Network.Volumes["acme-webroot"],
		}
	}
	// Before the app: its migration waits for the check of the new nginx configuration.
	if s.Proxy, err = NewProxy(ctx, cfg.Name("nginx"), proxyArgs, after); err != nil {
		return nil, err
	}

	retire := newRetireTimings(cfg.DrainWait(), nginxDNSValid())
	appArgs := &AppArgs{
		Stack: cfg.Stack, Provider: prov, OnHost: onHost, HostReady: s.Host.Ready, Orphans: orphans,
		Context: buildContext, ImageRef: cfg.ImageRef(), GoImage: cfg.GoImage, AppVersion: cfg.AppVersion,
		Push: cfg.PushRegistry != "", DockerHost: cfg.DockerHost.String(),
		Replicas: cfg.Replicas, LogLevel: cfg.LogLevel,
		DrainDelay: cfg.DrainDelay, ShutdownTimeout: cfg.ShutdownTimeout, DBMaxConns: cfg.DBPoolSize,
		MemoryMB: cfg.ServiceMemoryMB, CPUs: cfg.DockerCPUs(),
		StopGrace: retire.StopGrace(), Linger: retire.Linger, StartTimeout: cfg.StartTimeout,
		Network: appNet, NetworkName: cfg.Name("net", "app"), DataNetwork: dataNet, DataNetworkName: cfg.Name("net", "data"),
		OwnerURL: s.Database.OwnerURL, AppURL: s.Database.AppURL, AppPassword: cfg.AppDBPassword,
		DatabaseReady: s.Database.Ready, ConfigChecked: []pulumi.Resource{s.Proxy.Check},
		WriteAuth: cfg.WriteAuth, TrustedProxies: s.Network.Subnets,
	}
	if cfg.WriteAuth != WriteAuthNone {
		appArgs.APITokens = cfg.APITokensFile()
	}
	if s.App, err = NewApp(ctx, cfg.Name("app"), appArgs, after); err != nil {
		return nil, err
	}
	if err := s.Proxy.Install(ctx, s.App.Ready); err != nil {
		return nil, err
	}

	if cfg.BackupsEnabled {
		backupsArgs := &BackupsArgs{
			Stack: cfg.Stack, Provider: prov, Orphans: orphans, Image: cfg.PostgresImage,
			OwnerURL: s.Database.OwnerURL, Network: dataNet, Volume: s.Network.Volumes["backups"],
			Interval: cfg.BackupInterval, Keep: cfg.BackupKeep, Verify: cfg.BackupVerify,
			Ready: append(append([]pulumi.Resource{}, s.Database.Ready...), s.App.Migration),
		}
		if !cfg.ExternalDB {
			backupsArgs.ImageID = s.Database.ImageID
		}
		if s.Backups, err = NewBackups(ctx, cfg.Name("backup"), backupsArgs, after); err != nil {
			return nil, err
		}
	}

	// The proof (always; notes:smokeCheck adds the request through nginx) comes before retire.
	addr, reachable := probeFrom(cfg.DockerHost, cfg.BindAddress)
	if s.Smoke, err = NewSmoke(ctx, cfg.Name("smoke"), &SmokeArgs{
		Stack: cfg.Stack, OnHost: onHost, URL: cfg.BaseURL() + "/readyz",
		Probe: SmokeProbe{
			InNginx: !reachable, NginxContainer: cfg.Name("nginx"), PublicHost: cfg.PublicHost(),
			Address: addr, Trust: smokeTrust(cfg, s.Proxy),
		},
		ThroughNginx: cfg.SmokeCheck,
		Revision:     s.App.RevisionID, MigrationStatus: s.App.MigrationStatus, Replicas: s.App.ReplicaNames,
		Triggers: pulumi.Array{s.Proxy.Config.ID(), s.Proxy.Container.ID()},
		After:    append(append([]pulumi.Resource{}, s.Proxy.Ready...), s.App.Ready...),
	}, after); err != nil {
		return nil, err
	}
	if s.Retire, err = NewRetire(ctx, cfg.Name("app", "retire"), &RetireArgs{
		Stack: cfg.Stack, OnHost: onHost, DrainWait: retire.DrainWait,
		Network: cfg.Name("net", "app"), AliasWait: retire.AliasWait,
		Keep: s.App.ReplicaNames, After: []pulumi.Resource{s.Smoke.Check},
	}, pulumi.Parent(s.App)); err != nil {
		return nil, err
	}
	if err := s.Database.LeaveEdge(ctx, cfg.Name("db"), dbArgs, []pulumi.Resource{s.Retire}); err != nil {
		return nil, err
	}

	exportCommon(ctx, cfg, network, s.App.ImageID, s.App.RevisionID)
	ctx.Export("replicaNames", s.App.ReplicaNames)
	ctx.Export("migrationContainer", s.App.MigrationName)
	ctx.Export("nginxContainer", s.Proxy.Container.Name)
	ctx.Export("nginxConfigHash", s.Proxy.Config.Triggers.Index(pulumi.Int(0)))
	if cfg.ExternalDB {
		ctx.Export("databaseHost", s.Database.Host)
	} else {
		ctx.Export("databaseContainer", s.Database.Host)
		if cfg.DBPort != 0 {
			ctx.Export("databaseAddress", pulumi.Sprintf("%s:%d", cfg.BindAddress, cfg.DBPort))
		}
	}
	if cfg.BackupsEnabled {
		ctx.Export("backupContainer", s.Backups.Container.Name)
		ctx.Export("backupNowCommand", pulumi.Sprintf("docker exec %s notes-backup now", s.Backups.Container.Name))
		ctx.Export("restoreCommand", pulumi.Sprintf("docker exec %s notes-backup restore <file>", s.Backups.Container.Name))
	}
	if cfg.TLS == nginx.TLSACME {
		ctx.Export("certbotContainer", s.Proxy.CertbotName)
	}
	return s, nil
}

// smokeTrust is what the smoke check trusts besides the public CAs: the tls=provided chain, or
// the tls=acme placeholder and private ACME CA; nothing with TLS off.
func smokeTrust(cfg *Config, p *Proxy) pulumi.StringInput {
	switch cfg.TLS {
	case nginx.TLSProvided:
		return cfg.TLSCert
	case nginx.TLSACME:
		return p.SmokeTrust
	}
	return nil
}
