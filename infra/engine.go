package main

import (
	"fmt"
	"net"

	"github.com/pulumi/pulumi-command/sdk/go/command/local"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// Engine is how the stack's resources are declared (notes:engine). The stack does the same on
// both: the engines differ in what runs it.
type Engine string

const (
	// EngineContainers is plain containers on one Docker host, rolled out by the program
	// (revision-named replicas, the proof, scripts/retire.sh).
	EngineContainers Engine = "containers"
	// EngineSwarm is Docker Swarm services on a swarm the program makes the host a manager of:
	// Docker secrets, and rolling updates, restarts and rollbacks by the engine.
	EngineSwarm Engine = "swarm"
)

// validateEngine checks notes:engine and what the Swarm engine cannot do (yet). Each problem
// names its key.
func (c *Config) validateEngine() []*ConfigError {
	var errs []*ConfigError
	add := func(key, format string, args ...any) {
		errs = append(errs, &ConfigError{Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	switch c.Engine {
	case EngineContainers:
		return nil
	case EngineSwarm:
	default:
		add("engine", "%q must be containers (plain containers on one host, the default) or swarm (Docker Swarm services)", c.Engine)
		return errs
	}
	// A host-mode published port binds every address of its node: Swarm cannot bind one.
	if ip := net.ParseIP(c.BindAddress); ip != nil && !ip.IsUnspecified() {
		add("bindAddress", "%q: with engine swarm nginx's ports are published in host mode, which binds every address of the node; set 0.0.0.0 (and firewall the ports) or use engine containers", c.BindAddress)
	}
	if c.DBPort != 0 {
		add("dbPort", "not supported with engine swarm (a published port binds every address of the node, never only the loopback); use 0 and `docker exec` into the database task, or engine containers")
	}
	return errs
}

// engineSwitchRefusal is the guard's update command. Every input of the guard is part of every
// stack's state, and any change of one runs this command: keep it (and the create command's
// form) exactly as it is.
const engineSwitchRefusal = `printf 'config notes:engine: this stack runs on engine %s and cannot switch engines in place (both would claim the same names, ports and volumes). Back up the data, pulumi destroy, set notes:engine, pulumi up, restore (docs/infra.md, Engines).\n' "$PULUMI_COMMAND_STDOUT" >&2; exit 1`

// newEngineGuard records the stack's engine and refuses to change it: switching the engine of an
// existing stack would create the other engine's resources next to the running ones (the same
// names, ports and volumes). Everything that reaches the host waits for it (HostArgs.After), so a
// refused switch changes nothing. The way to switch is `pulumi destroy`, then `pulumi up`.
// pulumi-command runs Update when Create changes (the engine), with the previous stdout in
// PULUMI_COMMAND_STDOUT.
func newEngineGuard(ctx *pulumi.Context, name string, engine Engine) (*local.Command, error) {
	return local.NewCommand(ctx, name, &local.CommandArgs{
		Create: pulumi.String("echo " + string(engine)),
		Update: pulumi.String(engineSwitchRefusal),
	})
}

// exportCommon exports the stack outputs both engines have.
func exportCommon(ctx *pulumi.Context, cfg *Config, network, imageID, revision pulumi.StringOutput) {
	base := cfg.BaseURL()
	ctx.Export("url", pulumi.String(base))
	ctx.Export("apiUrl", pulumi.String(base+"/api/notes"))
	ctx.Export("healthUrl", pulumi.String(base+"/readyz"))
	ctx.Export("livenessUrl", pulumi.String(base+"/healthz"))
	ctx.Export("dockerHost", pulumi.String(cfg.DockerHost.String()))
	ctx.Export("engine", pulumi.String(string(cfg.Engine)))
	ctx.Export("network", network)
	ctx.Export("imageId", imageID)
	ctx.Export("imageName", pulumi.String(cfg.ImageRef()))
	ctx.Export("appVersion", pulumi.String(cfg.AppVersion))
	ctx.Export("revision", revision)
}
