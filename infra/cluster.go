package main

import (
	_ "embed"
	"fmt"
	"slices"
	"strings"

	"github.com/pulumi/pulumi-command/sdk/go/command/local"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

//go:embed scripts/swarm-worker.sh
var swarmWorkerScript string

//go:embed scripts/swarm-labels.sh
var swarmLabelsScript string

// Node roles (notes:workers[].labels, notes:managerLabels): where the stateful services and the
// front door run.
const (
	// RoleDB is the one node of Postgres and its backups (their volumes live there).
	RoleDB = "db"
	// RoleEdge are the nodes that run an nginx task with the published ports.
	RoleEdge = "edge"
)

// Worker is one entry of notes:workers: a host that joins the stack's swarm as a worker.
type Worker struct {
	Host   DockerHost
	Labels []string // roles, RoleDB and RoleEdge
}

// rawWorker is a notes:workers entry as it is written in the stack file.
type rawWorker struct {
	Host   string   `json:"host"`
	Labels []string `json:"labels"`
}

// parseWorkers checks the notes:workers entries: each host an ssh:// URL as notes:dockerHost
// takes it, every label a known role, no host twice. Errors name the entry's key.
func parseWorkers(raw []rawWorker) ([]Worker, []error) {
	var ws []Worker
	var errs []error
	seen := map[string]bool{}
	for i, r := range raw {
		key := fmt.Sprintf("workers[%d]", i)
		h, err := ParseDockerHost(strings.TrimSpace(r.Host))
		switch {
		case err != nil:
			errs = append(errs, keyErr(key+".host", "%v", err))
			continue
		case !h.IsSSH():
			errs = append(errs, keyErr(key+".host", "%q: workers are reached over ssh: ssh://user@host[:port]", r.Host))
			continue
		}
		id := fmt.Sprintf("%s:%d", h.Host, h.Port)
		if seen[id] {
			errs = append(errs, keyErr(key+".host", "%q is listed twice", r.Host))
		}
		seen[id] = true
		if err := checkRoles(r.Labels); err != nil {
			errs = append(errs, keyErr(key+".labels", "%v", err))
		}
		ws = append(ws, Worker{Host: h, Labels: r.Labels})
	}
	return ws, errs
}

func checkRoles(labels []string) error {
	for _, l := range labels {
		if l != RoleDB && l != RoleEdge {
			return fmt.Errorf("%q is not a node label: use %s (Postgres and backups) or %s (nginx)", l, RoleDB, RoleEdge)
		}
	}
	return nil
}

// Clustered reports whether the stack's swarm has nodes besides the manager.
func (c *Config) Clustered() bool { return len(c.Workers) > 0 }

// ManagerRoles are the manager's node labels: notes:managerLabels, or by default every role
// no worker has (on one host: both).
func (c *Config) ManagerRoles() []string {
	if c.ManagerLabels != nil {
		return c.ManagerLabels
	}
	var roles []string
	for _, r := range []string{RoleDB, RoleEdge} {
		if !slices.ContainsFunc(c.Workers, func(w Worker) bool { return slices.Contains(w.Labels, r) }) {
			roles = append(roles, r)
		}
	}
	return roles
}

// EdgeNodes is how many nodes run nginx.
func (c *Config) EdgeNodes() int { return c.nodesWith(RoleEdge) }

// nodesWith counts the nodes (manager and workers) that carry role.
func (c *Config) nodesWith(role string) int {
	n := 0
	if slices.Contains(c.ManagerRoles(), role) {
		n++
	}
	for _, w := range c.Workers {
		if slices.Contains(w.Labels, role) {
			n++
		}
	}
	return n
}

// validateCluster checks the keys of a swarm of several nodes.
func (c *Config) validateCluster() []*ConfigError {
	var errs []*ConfigError
	add := func(key, format string, args ...any) {
		errs = append(errs, &ConfigError{Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	if c.MaxReplicasPerNode < 0 {
		add("maxReplicasPerNode", "must be 0 (no limit) or a number of app tasks per node, got %d", c.MaxReplicasPerNode)
	}
	if c.ManagerLabels != nil {
		if err := checkRoles(c.ManagerLabels); err != nil {
			add("managerLabels", "%v", err)
		}
	}
	if !c.Clustered() && c.ManagerLabels == nil {
		return errs
	}
	if c.Engine != EngineSwarm {
		if c.Clustered() {
			add("workers", "only with engine swarm (engine containers runs on one host)")
		}
		if c.ManagerLabels != nil {
			add("managerLabels", "only with engine swarm")
		}
		return errs
	}
	if c.Clustered() && c.DockerHost.Kind == UnixHost {
		add("dockerHost", "%q: with notes:workers the manager must be reachable by them: an ssh:// or tcp:// host, not a local socket", c.DockerHost)
	}
	if c.OwnRegistry() {
		if c.RegistryPort < 1 || c.RegistryPort > 65535 {
			add("registryPort", "must be a TCP port (1-65535) for the stack's registry on the manager, got %d", c.RegistryPort)
		}
		if slices.Contains(c.registryPortsInUse(), c.RegistryPort) {
			add("registryPort", "%d is nginx's port on the manager: choose another one for the stack's registry", c.RegistryPort)
		}
	}
	if dbNodes := c.nodesWith(RoleDB); !c.ExternalDB && dbNodes != 1 {
		add("workers", "exactly one node (a worker or, by notes:managerLabels, the manager) must carry the label %s, found %d: Postgres and its volume live on one node", RoleDB, dbNodes)
	}
	if c.EdgeNodes() == 0 {
		add("workers", "no node carries the label %s: nginx would run nowhere", RoleEdge)
	}
	return errs
}

// swarmNodes are the workers of the stack's swarm, joined over ssh, and the labels of every node.
type swarmNodes struct {
	token   *local.Command   // manager address and worker join token (secret)
	workers []*local.Command // one per worker: join, and drain + leave on delete
	labels  *local.Command   // the node labels (only with workers or managerLabels)
}

// ready is what the stack's services wait for.
func (n swarmNodes) ready() []pulumi.Resource {
	var r []pulumi.Resource
	for _, w := range n.workers {
		r = append(r, w)
	}
	if n.labels != nil {
		r = append(r, n.labels)
	}
	return r
}

// nodes joins notes:workers to the swarm and sets every node's labels. A one-host stack
// without notes:managerLabels declares nothing here: the manager step labels its node.
func (d *swarmDeploy) nodes(mgr *local.Command) (swarmNodes, error) {
	cfg := d.cfg
	var n swarmNodes
	if !cfg.Clustered() && cfg.ManagerLabels == nil {
		return n, nil
	}
	after := []pulumi.Resource{mgr}
	if cfg.Clustered() {
		tokenCmd, _ := d.on.Script(swarmWorkerScript, "token")
		tok, err := local.NewCommand(d.ctx, cfg.Name("swarm", "join-token"), &local.CommandArgs{
			Create:      pulumi.String(tokenCmd),
			Environment: d.env,
			Triggers:    pulumi.Array{pulumi.String(cfg.DockerHost.String())},
			Logging:     local.LoggingNone,
		}, d.parent, pulumi.DependsOn([]pulumi.Resource{mgr}), pulumi.AdditionalSecretOutputs([]string{"stdout"}))
		if err != nil {
			return n, err
		}
		n.token = tok
		for _, w := range cfg.Workers {
			on := NewOnHost(w.Host, cfg.SSHOpts)
			join, _ := on.Script(swarmWorkerScript, "join")
			// Delete runs here: drain the node on the manager (its tasks move), leave on the
			// worker (tolerated when the worker is gone), remove the node on the manager. The
			// node id is the join's stdout.
			drain, _ := d.on.Script(swarmWorkerScript, "drain")
			leave, _ := on.Script(swarmWorkerScript, "leave")
			remove, _ := d.on.Script(swarmWorkerScript, "remove")
			del := fmt.Sprintf(`printf %%s "$PULUMI_COMMAND_STDOUT" | %s && { %s || echo "phase swarm: the worker did not answer: removing it anyway" >&2; } && printf %%s "$PULUMI_COMMAND_STDOUT" | %s`, drain, leave, remove)
			c, err := local.NewCommand(d.ctx, cfg.Name("swarm", "worker", workerName(w.Host)), &local.CommandArgs{
				Create:      pulumi.String(join),
				Delete:      pulumi.String(del),
				Environment: d.env,
				Stdin:       tok.Stdout,
				Triggers:    pulumi.Array{pulumi.String(w.Host.String()), pulumi.String(cfg.DockerHost.String())},
				Logging:     local.LoggingStderr,
			}, d.parent, pulumi.DependsOn([]pulumi.Resource{tok}))
			if err != nil {
				return n, err
			}
			n.workers = append(n.workers, c)
			after = append(after, c)
		}
	}
	// One command on the manager sets every node's labels to exactly the configured ones:
	// "self" is the manager, a worker is its node id (the join's stdout).
	var specs []pulumi.StringInput
	specs = append(specs, pulumi.String("self="+strings.Join(cfg.ManagerRoles(), ",")))
	for i, w := range cfg.Workers {
		id := n.workers[i].Stdout.ApplyT(strings.TrimSpace).(pulumi.StringOutput)
		specs = append(specs, pulumi.Sprintf("%s=%s", id, strings.Join(w.Labels, ",")))
	}
	create := pulumi.All(toAnySlice(specs)...).ApplyT(func(v []any) string {
		args := []string{"apply", cfg.Stack}
		for _, s := range v {
			args = append(args, s.(string))
		}
		cmd, _ := d.on.Script(swarmLabelsScript, args...)
		return cmd
	}).(pulumi.StringOutput)
	reset, _ := d.on.Script(swarmLabelsScript, "reset", cfg.Stack)
	labels, err := local.NewCommand(d.ctx, cfg.Name("swarm", "labels"), &local.CommandArgs{
		Create:      create,
		Delete:      pulumi.String(reset),
		Environment: d.env,
		Logging:     local.LoggingStdoutAndStderr,
	}, d.parent, pulumi.DependsOn(after))
	if err != nil {
		return n, err
	}
	n.labels = labels
	return n, nil
}

// workerName is the worker's part of its resource name: host and port, so the list's order
// does not matter.
func workerName(h DockerHost) string {
	return strings.NewReplacer(":", "-", "[", "", "]", "").Replace(fmt.Sprintf("%s-%d", h.Host, h.Port))
}

func toAnySlice(in []pulumi.StringInput) []any {
	out := make([]any, len(in))
	for i, s := range in {
		out[i] = s
	}
	return out
}
