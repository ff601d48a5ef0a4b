package main

import (
	"github.com/pulumi/pulumi-command/sdk/go/command/local"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// Stack is the whole deployment, wired from the components.
type Stack struct {
	Host     *Host
	Network  *Network
	Database *Database
	App      *App
	Proxy    *Proxy
	Backups  *Backups // nil unless backups=true
	Smoke    *Smoke   // nil unless smokeCheck=true
	Retire   *local.Command
}

// NewStack creates every component and exports the stack outputs.
func NewStack(ctx *pulumi.Context, cfg *Config) (*Stack, error) {
	s := &Stack{}
	var err error
	if s.Host, err = NewHost(ctx, cfg); err != nil {
		return nil, err
	}
	// Everything that talks to the host goes through the provider, which waits for the
	// bootstrap; the components depend on the Host component too.
	after := pulumi.DependsOn([]pulumi.Resource{s.Host})
	if s.Network, err = NewNetwork(ctx, cfg, s.Host, after); err != nil {
		return nil, err
	}
	if s.Database, err = NewDatabase(ctx, cfg, s.Host, s.Network, after); err != nil {
		return nil, err
	}
	if s.App, err = NewApp(ctx, cfg, s.Host, s.Network, s.Database, after); err != nil {
		return nil, err
	}
	if s.Proxy, err = NewProxy(ctx, cfg, s.Host, s.Network, s.App, after); err != nil {
		return nil, err
	}
	if cfg.BackupsEnabled {
		if s.Backups, err = NewBackups(ctx, cfg, s.Host, s.Network, s.Database, s.App, after); err != nil {
			return nil, err
		}
	}
	if cfg.SmokeCheck {
		if s.Smoke, err = NewSmoke(ctx, cfg, s.Host, s.App, s.Proxy, after); err != nil {
			return nil, err
		}
	}
	live := []pulumi.Resource{s.Proxy.Config}
	if s.Smoke != nil {
		live = append(live, s.Smoke)
	}
	if s.Retire, err = NewRetire(ctx, cfg, s.Host, s.App, live); err != nil {
		return nil, err
	}

	base := cfg.BaseURL()
	ctx.Export("url", pulumi.String(base))
	ctx.Export("apiUrl", pulumi.String(base+"/api/notes"))
	ctx.Export("healthUrl", pulumi.String(base+"/readyz"))
	ctx.Export("livenessUrl", pulumi.String(base+"/healthz"))
	ctx.Export("dockerHost", pulumi.String(cfg.DockerHost))
	ctx.Export("network", s.Network.Network.Name)
	ctx.Export("imageId", s.App.ImageID)
	ctx.Export("imageName", pulumi.String(s.App.ImageRef))
	ctx.Export("appVersion", pulumi.String(cfg.AppVersion))
	ctx.Export("revision", s.App.RevisionID)
	ctx.Export("replicaNames", s.App.ReplicaNames)
	ctx.Export("migrationContainer", s.App.Migration.Name)
	ctx.Export("nginxContainer", s.Proxy.Container.Name)
	ctx.Export("nginxConfigHash", s.Proxy.Config.Triggers.Index(pulumi.Int(0)))
	if s.Database.Container != nil {
		ctx.Export("databaseContainer", s.Database.Container.Name)
		if cfg.DBPort != 0 {
			ctx.Export("databaseAddress", pulumi.Sprintf("%s:%d", cfg.BindAddress, cfg.DBPort))
		}
	} else {
		ctx.Export("databaseHost", s.Database.Host)
	}
	if s.Backups != nil {
		ctx.Export("backupContainer", s.Backups.Container.Name)
		ctx.Export("backupNowCommand", pulumi.Sprintf("docker exec %s notes-backup now", s.Backups.Container.Name))
		ctx.Export("restoreCommand", pulumi.Sprintf("docker exec %s notes-backup restore <file>", s.Backups.Container.Name))
	}
	if s.Proxy.Certbot != nil {
		ctx.Export("certbotContainer", s.Proxy.Certbot.Name)
	}
	return s, nil
}
