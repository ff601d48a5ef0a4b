package main

import (
	_ "embed"
	"fmt"

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
type Backups struct {
	pulumi.ResourceState

	Container *docker.Container
}

func NewBackups(ctx *pulumi.Context, cfg *Config, host *Host, net *Network, db *Database, app *App, opts ...pulumi.ResourceOption) (*Backups, error) {
	name := cfg.Name("backup")
	b := &Backups{}
	if err := ctx.RegisterComponentResource("notes:infra:Backups", name, b, opts...); err != nil {
		return nil, err
	}
	prov := pulumi.Provider(host.Provider)
	image := pulumi.StringOutput{}
	if db.Image != nil {
		image = db.Image.ImageId
	} else {
		img, err := docker.NewRemoteImage(ctx, name+"-image", &docker.RemoteImageArgs{
			Name:        pulumi.String(cfg.PostgresImage),
			KeepLocally: pulumi.Bool(true),
		}, pulumi.Parent(b), prov)
		if err != nil {
			return nil, err
		}
		image = img.ImageId
	}
	c, err := docker.NewContainer(ctx, name+"-container", &docker.ContainerArgs{
		Name:        pulumi.String(cfg.Name("backup")),
		Image:       image,
		Entrypoints: pulumi.ToStringArray([]string{"/bin/sh", BackupCommand, "loop"}),
		Envs: pulumi.StringArray{
			pulumi.Sprintf("DATABASE_URL=%s", db.OwnerURL),
			pulumi.String("BACKUP_DIR=/backups"),
			pulumi.String(fmt.Sprintf("BACKUP_INTERVAL=%d", int(cfg.BackupInterval.Seconds()))),
			pulumi.String(fmt.Sprintf("BACKUP_RETENTION=%d", cfg.BackupKeep)),
		},
		Uploads: docker.ContainerUploadArray{docker.ContainerUploadArgs{
			File:       pulumi.String(BackupCommand),
			Content:    pulumi.String(backupScript),
			Executable: pulumi.Bool(true),
		}},
		Volumes: docker.ContainerVolumeArray{docker.ContainerVolumeArgs{
			VolumeName: net.Backups.Name, ContainerPath: pulumi.String("/backups"), ReadOnly: pulumi.Bool(false),
		}},
		NetworksAdvanced: docker.ContainerNetworksAdvancedArray{docker.ContainerNetworksAdvancedArgs{Name: net.Network.Name}},
		Capabilities:     docker.ContainerCapabilitiesArgs{Drops: pulumi.ToStringArray([]string{"ALL"})},
		SecurityOpts:     pulumi.ToStringArray([]string{"no-new-privileges"}),
		Memory:           pulumi.Int(512),
		MemorySwap:       pulumi.Int(512), // explicit, or the provider reads back 2x and diffs
		Restart:          pulumi.String("unless-stopped"),
		StopTimeout:      pulumi.Int(10),
		LogDriver:        pulumi.String("json-file"),
		LogOpts:          logOpts(),
		Labels:           containerLabels(cfg, "backup"),
	}, pulumi.Parent(b), prov, pulumi.DependsOn(depends(db.Container, app.Migration)))
	if err != nil {
		return nil, err
	}
	b.Container = c
	if err := ctx.RegisterResourceOutputs(b, pulumi.Map{"container": c.Name}); err != nil {
		return nil, err
	}
	return b, nil
}
