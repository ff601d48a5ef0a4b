package main

import (
	_ "embed"
	"fmt"
	"net"
	"slices"
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

//go:embed scripts/swarm-digest.sh
var swarmDigestScript string

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

	Manager   *local.Command  // swarm init when needed, node labels
	Nodes     swarmNodes      // the workers and every node's labels (none on one host)
	Registry  *docker.Service // the stack's own registry (OwnRegistry), else nil
	Database  *docker.Service
	Migration *local.Command
	App       *docker.Service
	Watch     *local.Command // prints the tasks' errors of a failed app update
	Nginx     *docker.Service
	Certbot   *docker.Service // nil unless tls=acme
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

// appHealthTest is the replicas' and app tasks' healthcheck on both engines: the image's `notes
// healthcheck` against /startedz, which turns healthy once the process reached the database and
// stays healthy through a database outage. On /readyz a few seconds of outage made every task
// unhealthy, and Swarm replaced them all at once (measured by `make faults`: the outage became
// one of the app).
var appHealthTest = []string{"CMD", "/notes", "healthcheck", "--url", "http://127.0.0.1:8080/startedz"}

// App task healthcheck timing. The probe is a process exec'd in the container, which on a
// starved host takes seconds: with a 2 s timeout, three slow probes in a row made healthy
// replicas unhealthy, and Swarm replaced them (seen under load average 40).
const (
	appHealthInterval = 3 * time.Second
	appHealthTimeout  = "5s"
	appHealthRetries  = 3
)

func newSwarmTimings(start, drainWait, linger time.Duration, replicas int) swarmTimings {
	monitor := 2*appHealthInterval*appHealthRetries + 5*time.Second
	perTask := 10*time.Second + monitor + drainWait // start period, monitor, the old task's drain
	return swarmTimings{
		Monitor:   monitor,
		StopGrace: drainWait + linger,
		Converge:  start + time.Duration(2*replicas)*perTask, // the update and its rollback
	}
}

// NewSwarm registers the Swarm component (notes-<stack>-swarm) and everything of the stack under
// it, in deploy order: manager, network and volumes, secrets, database, build, migrate, app,
// nginx, backups, smoke check. It exports the stack outputs. Each phase is a method of
// swarmDeploy; the resources' names and parents are those of one flat component, so splitting
// or reordering the methods changes nothing in a deployed stack.
func NewSwarm(ctx *pulumi.Context, cfg *Config, host *Host, build BuildContext) (*Swarm, error) {
	name := cfg.Name("swarm")
	sw := &Swarm{}
	if err := ctx.RegisterComponentResource("notes:infra:Swarm", name, sw, pulumi.DependsOn([]pulumi.Resource{host})); err != nil {
		return nil, err
	}
	d := &swarmDeploy{ctx: ctx, cfg: cfg, on: host.OnHost, parent: pulumi.Parent(sw)}
	var err error
	if sw.Manager, err = d.manager(name, host); err != nil {
		return nil, err
	}
	if sw.Nodes, err = d.nodes(sw.Manager); err != nil {
		return nil, err
	}
	d.cluster, d.nodesReady = sw.Nodes, sw.Nodes.ready()
	if err := d.network(); err != nil {
		return nil, err
	}
	db, err := d.database()
	if err != nil {
		return nil, err
	}
	sw.Database = db.service
	var reg ownRegistry
	if cfg.OwnRegistry() {
		if reg, err = d.registry(); err != nil {
			return nil, err
		}
		sw.Registry = reg.service
	}
	app, err := d.app(host, build, db, reg)
	if err != nil {
		return nil, err
	}
	sw.ImageID, sw.Revision, sw.Migration, sw.App, sw.Watch = app.imageID, app.revision, app.migration, app.service, app.watch
	ng, nginxHash, err := d.nginx()
	if err != nil {
		return nil, err
	}
	sw.Nginx = ng
	if cfg.TLS == nginx.TLSACME {
		if sw.Certbot, err = d.certbot(ng); err != nil {
			return nil, err
		}
	}
	if cfg.BackupsEnabled {
		if sw.Backups, err = d.backups(db.ownerURL, append(append([]pulumi.Resource{}, db.ready...), app.migration)); err != nil {
			return nil, err
		}
	}
	if sw.Smoke, err = d.smoke(app, ng); err != nil {
		return nil, err
	}

	exportCommon(ctx, cfg, d.net.Network.Name, sw.ImageID, sw.Revision)
	ctx.Export("appService", app.service.Name)
	ctx.Export("nginxService", ng.Name)
	ctx.Export("migrationContainer", app.migrationName)
	ctx.Export("nginxConfigHash", pulumi.String(nginxHash))
	if sw.Certbot != nil {
		ctx.Export("certbotService", sw.Certbot.Name)
	}
	if cfg.ExternalDB {
		ctx.Export("databaseHost", db.host)
	} else {
		ctx.Export("databaseService", db.host)
	}
	if sw.Registry != nil {
		ctx.Export("registryService", sw.Registry.Name)
		ctx.Export("imageRegistry", pulumi.String(cfg.ImageRegistry()))
	}
	if cfg.BackupsEnabled {
		ctx.Export("backupService", sw.Backups.Name)
		task := fmt.Sprintf("$(docker ps -q -f label=com.docker.swarm.service.name=%s)", cfg.Name("backup"))
		ctx.Export("backupNowCommand", pulumi.String("docker exec "+task+" notes-backup now"))
		ctx.Export("restoreCommand", pulumi.String("docker exec "+task+" notes-backup restore <file>"))
	}
	if err := ctx.RegisterResourceOutputs(sw, pulumi.Map{"revision": sw.Revision, "appService": app.service.Name}); err != nil {
		return nil, err
	}
	return sw, nil
}

// swarmDeploy is what every phase of the Swarm stack needs: the configuration, the way to the
// manager, the component every resource is a child of and, once the manager and network
// phases ran, the Docker provider and the overlay network.
type swarmDeploy struct {
	ctx    *pulumi.Context
	cfg    *Config
	on     OnHost
	parent pulumi.ResourceOption

	provider *docker.Provider      // waits for the manager
	prov     pulumi.ResourceOption // pulumi.Provider(provider)
	env      pulumi.StringMap      // the environment of commands on the manager
	net      *Network
	// The services' networks by role (Network): nginx edge and app, certbot edge, the app app
	// and data, Postgres and backups data.
	edgeNets, nginxNets, appNets, dataNets docker.ServiceTaskSpecNetworksAdvancedArray
	// smokeTrust is what the smoke check trusts besides the public CAs with tls=acme (the
	// placeholder and notes:acmeCaBundle); the nginx phase sets it.
	smokeTrust pulumi.StringOutput
	cluster    swarmNodes // the workers and labels (nodes)
	// nodesReady is what the services wait for: the workers joined and the nodes labelled.
	nodesReady []pulumi.Resource
}

// opts are the options of a resource of the stack: its parent, the provider, the nodes and more.
func (d *swarmDeploy) opts(more ...pulumi.ResourceOption) []pulumi.ResourceOption {
	o := []pulumi.ResourceOption{d.parent, d.prov}
	if len(d.nodesReady) > 0 {
		o = append(o, pulumi.DependsOn(d.nodesReady))
	}
	return append(o, more...)
}

// res declares the Docker secrets and configs of role.
func (d *swarmDeploy) res(role string) swarmRes {
	return swarmRes{ctx: d.ctx, stack: d.cfg.Stack, role: role, opts: d.opts()}
}

// placeOnDBNode is the placement of the database and its backups: the node labelled for it.
func (d *swarmDeploy) placeOnDBNode() []string {
	return []string{fmt.Sprintf("node.labels.com.notes-stack.%s.db==true", d.cfg.Stack)}
}

// manager is phase swarm: the daemon is a manager (swarm init when it is in no swarm) and its
// node carries the stack's labels. Every Docker object of the stack goes through the provider it
// sets up, which waits for the manager (a component's dependencies do not reach its children).
func (d *swarmDeploy) manager(name string, host *Host) (*local.Command, error) {
	advertise := ""
	switch {
	case d.cfg.DockerHost.Kind == UnixHost:
		advertise = "127.0.0.1"
	case d.cfg.Clustered() && net.ParseIP(d.cfg.DockerHost.Host) != nil:
		// The address the workers reach: a host with several interfaces (docker0 is one)
		// may otherwise advertise another one. One host keeps Docker's choice.
		advertise = d.cfg.DockerHost.Host
	}
	initCmd, env := d.on.Script(swarmManagerScript, "init", d.cfg.Stack, advertise)
	releaseCmd, _ := d.on.Script(swarmManagerScript, "release", d.cfg.Stack)
	d.env = env
	mgr, err := local.NewCommand(d.ctx, name+"-manager", &local.CommandArgs{
		Create:      pulumi.String(initCmd),
		Delete:      pulumi.String(releaseCmd),
		Environment: env,
		Triggers:    pulumi.Array{pulumi.String(d.cfg.DockerHost.String())},
		Logging:     local.LoggingStdoutAndStderr,
	}, d.parent, pulumi.DependsOn(host.Ready))
	if err != nil {
		return nil, err
	}
	prov, err := docker.NewProvider(d.ctx, name+"-docker", &docker.ProviderArgs{
		Host:    pulumi.String(d.cfg.DockerHost.String()),
		SshOpts: pulumi.ToStringArray(d.on.ProviderSSHOpts()),
	}, d.parent, pulumi.DependsOn([]pulumi.Resource{mgr}))
	if err != nil {
		return nil, err
	}
	d.provider, d.prov = prov, pulumi.Provider(prov)
	return mgr, nil
}

// dbNodeProvider is a Docker provider for the worker labelled db (over ssh, after its join):
// a volume is local to its node, so the volumes of Postgres and its backups are created where
// their tasks run. Nil when the manager is the db node.
func (d *swarmDeploy) dbNodeProvider() (*docker.Provider, error) {
	for i, w := range d.cfg.Workers {
		if !slices.Contains(w.Labels, RoleDB) {
			continue
		}
		return docker.NewProvider(d.ctx, d.cfg.Name("swarm", "docker", "db"), &docker.ProviderArgs{
			Host:    pulumi.String(w.Host.String()),
			SshOpts: pulumi.ToStringArray(NewOnHost(w.Host, d.cfg.SSHOpts).ProviderSSHOpts()),
		}, d.parent, pulumi.DependsOn([]pulumi.Resource{d.cluster.workers[i]}))
	}
	return nil, nil
}

// network is the attachable overlay network (the migrate job joins it as a plain container) and
// the stack's volumes.
func (d *swarmDeploy) network() error {
	var volumes []string
	if !d.cfg.ExternalDB {
		volumes = append(volumes, "pgdata")
	}
	if d.cfg.BackupsEnabled {
		volumes = append(volumes, "backups")
	}
	if d.cfg.TLS == nginx.TLSACME {
		volumes = append(volumes, "letsencrypt", "acme-webroot")
	}
	volProv, err := d.dbNodeProvider()
	if err != nil {
		return err
	}
	net, err := NewNetwork(d.ctx, d.cfg.Name("net"), &NetworkArgs{
		Stack: d.cfg.Stack, Provider: d.provider, Volumes: volumes, DriverOpts: d.cfg.VolumeDriverOpts, Protect: d.cfg.Protect, Overlay: true,
		VolumeProvider: volProv,
	}, d.parent)
	if err != nil {
		return err
	}
	d.net = net
	attach := func(ns ...*docker.Network) docker.ServiceTaskSpecNetworksAdvancedArray {
		var a docker.ServiceTaskSpecNetworksAdvancedArray
		for _, n := range ns {
			a = append(a, docker.ServiceTaskSpecNetworksAdvancedArgs{Name: n.ID()})
		}
		return a
	}
	d.edgeNets = attach(net.Network)
	d.nginxNets = attach(net.Network, net.App)
	d.appNets = attach(net.App, net.Data)
	d.dataNets = attach(net.Data)
	return nil
}
