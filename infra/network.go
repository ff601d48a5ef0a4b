package main

import (
	"github.com/pulumi/pulumi-docker/sdk/v4/go/docker"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// Network is the user-defined bridge network every container joins (container names resolve on
// it; Postgres is reachable only here) and the named volumes that hold data.
type Network struct {
	pulumi.ResourceState

	Network     *docker.Network
	PGData      *docker.Volume // nil with an external database
	Backups     *docker.Volume // nil without backups
	LetsEncrypt *docker.Volume // tls=acme only: certbot's /etc/letsencrypt
	ACMEWebroot *docker.Volume // tls=acme only: HTTP-01 challenge files
}

func NewNetwork(ctx *pulumi.Context, cfg *Config, host *Host, opts ...pulumi.ResourceOption) (*Network, error) {
	name := cfg.Name("net")
	n := &Network{}
	if err := ctx.RegisterComponentResource("notes:infra:Network", name, n, opts...); err != nil {
		return nil, err
	}
	prov := pulumi.Provider(host.Provider)
	net, err := docker.NewNetwork(ctx, name+"-network", &docker.NetworkArgs{
		Name:   pulumi.String(cfg.Name("net")),
		Driver: pulumi.String("bridge"),
		Labels: labels(cfg, "network"),
	}, pulumi.Parent(n), prov)
	if err != nil {
		return nil, err
	}
	n.Network = net

	// Data volumes: protected from `pulumi destroy` and kept on the host when deleted in prod.
	dataOpts := []pulumi.ResourceOption{pulumi.Parent(n), prov, pulumi.Protect(cfg.Protect), pulumi.RetainOnDelete(cfg.Protect)}
	volume := func(role string) (*docker.Volume, error) {
		return docker.NewVolume(ctx, name+"-"+role, &docker.VolumeArgs{
			Name:   pulumi.String(cfg.Name(role)),
			Labels: volumeLabels(cfg, role),
		}, dataOpts...)
	}
	if !cfg.ExternalDB {
		if n.PGData, err = volume("pgdata"); err != nil {
			return nil, err
		}
	}
	if cfg.BackupsEnabled {
		if n.Backups, err = volume("backups"); err != nil {
			return nil, err
		}
	}
	if cfg.TLS == TLSACME {
		if n.LetsEncrypt, err = volume("letsencrypt"); err != nil {
			return nil, err
		}
		if n.ACMEWebroot, err = volume("acme-webroot"); err != nil {
			return nil, err
		}
	}
	outs := pulumi.Map{"network": net.Name}
	if n.PGData != nil {
		outs["pgdata"] = n.PGData.Name
	}
	if n.Backups != nil {
		outs["backups"] = n.Backups.Name
	}
	if err := ctx.RegisterResourceOutputs(n, outs); err != nil {
		return nil, err
	}
	return n, nil
}

// labels are set on every container and network of the stack.
func labels(cfg *Config, role string) docker.NetworkLabelArray {
	return docker.NetworkLabelArray{
		docker.NetworkLabelArgs{Label: pulumi.String("com.notes-stack.stack"), Value: pulumi.String(cfg.Stack)},
		docker.NetworkLabelArgs{Label: pulumi.String("com.notes-stack.role"), Value: pulumi.String(role)},
	}
}

func volumeLabels(cfg *Config, role string) docker.VolumeLabelArray {
	return docker.VolumeLabelArray{
		docker.VolumeLabelArgs{Label: pulumi.String("com.notes-stack.stack"), Value: pulumi.String(cfg.Stack)},
		docker.VolumeLabelArgs{Label: pulumi.String("com.notes-stack.role"), Value: pulumi.String(role)},
	}
}

func containerLabels(cfg *Config, role string, extra ...string) docker.ContainerLabelArray {
	l := docker.ContainerLabelArray{
		docker.ContainerLabelArgs{Label: pulumi.String("com.notes-stack.stack"), Value: pulumi.String(cfg.Stack)},
		docker.ContainerLabelArgs{Label: pulumi.String("com.notes-stack.role"), Value: pulumi.String(role)},
	}
	for i := 0; i+1 < len(extra); i += 2 {
		l = append(l, docker.ContainerLabelArgs{Label: pulumi.String(extra[i]), Value: pulumi.String(extra[i+1])})
	}
	return l
}

// logOpts rotate the json-file logs of every container.
func logOpts() pulumi.StringMap {
	return pulumi.StringMap{"max-size": pulumi.String("10m"), "max-file": pulumi.String("3")}
}
