package main

import (
	"strings"

	"github.com/pulumi/pulumi-docker/sdk/v4/go/docker"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// NetworkArgs is what the Network component uses.
type NetworkArgs struct {
	Stack    string
	Provider *docker.Provider
	// Volumes are the roles of the data volumes to create (pgdata, backups, letsencrypt,
	// acme-webroot); each is named notes-<stack>-<role>.
	Volumes []string
	// DriverOpts are the local driver options of the volumes by role (Config.VolumeDriverOpts).
	DriverOpts map[string]map[string]string
	// Protect protects the volumes from `pulumi destroy` and keeps them on the host when deleted.
	Protect bool
	// Overlay makes it an attachable overlay network (engine swarm): services and the migration
	// container join it.
	Overlay bool
	// VolumeProvider creates the volumes on another daemon than the network (engine swarm: the
	// db node's, where the tasks that mount them run); nil: Provider.
	VolumeProvider *docker.Provider
	// DataReachable leaves the data network not internal: a published database port (dev's
	// dbPort) needs a gateway, which an internal network has not.
	DataReachable bool
}

// Network is the stack's three networks and the named volumes that hold data:
//   - edge, notes-<stack>-net (the one network of earlier versions, kept so that an existing
//     stack keeps it): nginx with its published ports, certbot, which reaches the ACME CA
//     through it;
//   - app, notes-<stack>-net-app, internal: nginx and the replicas;
//   - data, notes-<stack>-net-data, internal: the replicas, the migration, Postgres, backups.
//
// nginx and Postgres share no network, and neither the replicas nor Postgres reach anything
// outside the host.
type Network struct {
	pulumi.ResourceState

	// Network is the edge network.
	Network *docker.Network
	App     *docker.Network
	Data    *docker.Network
	// Subnets are the app network's subnets (Docker chooses them), comma-separated: the
	// replicas' TRUSTED_PROXIES, since nginx reaches them from this network, and only nginx and
	// the replicas are on it.
	Subnets pulumi.StringOutput
	// Volumes maps each role of NetworkArgs.Volumes to the volume's name.
	Volumes map[string]pulumi.StringOutput
}

// NewNetwork registers the Network component name (notes-<stack>-net, also the Docker network's
// name).
func NewNetwork(ctx *pulumi.Context, name string, args *NetworkArgs, opts ...pulumi.ResourceOption) (*Network, error) {
	n := &Network{Volumes: map[string]pulumi.StringOutput{}}
	if err := ctx.RegisterComponentResource("notes:infra:Network", name, n, opts...); err != nil {
		return nil, err
	}
	prov := pulumi.Provider(args.Provider)
	volProv := prov
	if args.VolumeProvider != nil {
		volProv = pulumi.Provider(args.VolumeProvider)
	}
	newNet := func(resName, netName, role string, internal bool) (*docker.Network, error) {
		netArgs := &docker.NetworkArgs{
			Name:   pulumi.String(netName),
			Driver: pulumi.String("bridge"),
			Labels: labels(args.Stack, role),
		}
		if args.Overlay {
			netArgs.Driver, netArgs.Attachable = pulumi.String("overlay"), pulumi.Bool(true)
		}
		if internal {
			netArgs.Internal = pulumi.Bool(true)
		}
		return docker.NewNetwork(ctx, resName, netArgs, pulumi.Parent(n), prov)
	}
	// The edge network keeps the resource, name and label of the single network before the
	// split: a change would replace it, and every container on it.
	net, err := newNet(name+"-network", name, "network", false)
	if err != nil {
		return nil, err
	}
	n.Network = net
	if n.App, err = newNet(name+"-app", name+"-app", "network-app", true); err != nil {
		return nil, err
	}
	if n.Data, err = newNet(name+"-data", name+"-data", "network-data", !args.DataReachable); err != nil {
		return nil, err
	}
	n.Subnets = n.App.IpamConfigs.ApplyT(func(cs []docker.NetworkIpamConfig) string {
		var subnets []string
		for _, c := range cs {
			if c.Subnet != nil && *c.Subnet != "" {
				subnets = append(subnets, *c.Subnet)
			}
		}
		return strings.Join(subnets, ",")
	}).(pulumi.StringOutput)

	outs := pulumi.Map{"network": net.Name, "app": n.App.Name, "data": n.Data.Name}
	for _, role := range args.Volumes {
		vArgs := &docker.VolumeArgs{
			Name:   pulumi.String(objectName(args.Stack, role)),
			Labels: volumeLabels(args.Stack, role),
		}
		if o := args.DriverOpts[role]; len(o) > 0 {
			// Unset, not an empty map, without options: the state of existing stacks stays as it is.
			vArgs.DriverOpts = pulumi.ToStringMap(o)
		}
		v, err := docker.NewVolume(ctx, name+"-"+role, vArgs, pulumi.Parent(n), volProv, pulumi.Protect(args.Protect), pulumi.RetainOnDelete(args.Protect))
		if err != nil {
			return nil, err
		}
		n.Volumes[role] = v.Name
		outs[role] = v.Name
	}
	if err := ctx.RegisterResourceOutputs(n, outs); err != nil {
		return nil, err
	}
	return n, nil
}

// labels are set on every container and network of the stack.
// stackLabels are the labels of every Docker object of the stack: its stack and its role (what
// ops.sh and the e2e suite filter on), made by mk as the object kind's label type.
func stackLabels[T any](stack, role string, mk func(label, value pulumi.String) T) []T {
	return []T{mk("com.notes-stack.stack", pulumi.String(stack)), mk("com.notes-stack.role", pulumi.String(role))}
}

func labels(stack, role string) docker.NetworkLabelArray {
	return stackLabels(stack, role, func(l, v pulumi.String) docker.NetworkLabelInput { return docker.NetworkLabelArgs{Label: l, Value: v} })
}

func volumeLabels(stack, role string) docker.VolumeLabelArray {
	return stackLabels(stack, role, func(l, v pulumi.String) docker.VolumeLabelInput { return docker.VolumeLabelArgs{Label: l, Value: v} })
}

func containerLabels(stack, role string, extra ...string) docker.ContainerLabelArray {
	l := docker.ContainerLabelArray(stackLabels(stack, role, func(l, v pulumi.String) docker.ContainerLabelInput {
		return docker.ContainerLabelArgs{Label: l, Value: v}
	}))
	for i := 0; i+1 < len(extra); i += 2 {
		l = append(l, docker.ContainerLabelArgs{Label: pulumi.String(extra[i]), Value: pulumi.String(extra[i+1])})
	}
	return l
}

// logOpts rotate the json-file logs of every container.
func logOpts() pulumi.StringMap {
	return pulumi.StringMap{"max-size": pulumi.String("10m"), "max-file": pulumi.String("3")}
}
