package main

import (
	_ "embed"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

//go:embed scripts/orphan.sh
var orphanScript string

// newOrphanHook registers the hook every container of engine containers is created with: before
// Pulumi creates a container, scripts/orphan.sh removes a container of the same name that an
// interrupted `pulumi up` left behind (created on the host but not recorded in the state, or
// recorded as failed), so the next `pulumi up` converges without manual cleanup. Containers are
// named after what they run (replicas after their revision), so a container Pulumi is about to
// create under a name that is taken is never one the stack still needs.
func newOrphanHook(ctx *pulumi.Context, name string, on OnHost) (*pulumi.ResourceHookBinding, error) {
	hook, err := ctx.RegisterResourceHook(name, func(args *pulumi.ResourceHookArgs) error {
		v, ok := args.NewInputs["name"]
		if !ok || !v.IsString() {
			return nil
		}
		out, err := removeOrphan(on, v.StringValue())
		if out != "" {
			ctx.Log.Warn(out, nil)
		}
		return err
	}, nil)
	if err != nil {
		return nil, fmt.Errorf("registering the orphaned-container hook: %w", err)
	}
	return &pulumi.ResourceHookBinding{BeforeCreate: []*pulumi.ResourceHook{hook}}, nil
}

// removeOrphan runs scripts/orphan.sh for container on the host, from the program's process, and
// returns what it printed.
func removeOrphan(on OnHost, container string) (string, error) {
	line, _ := on.Script(orphanScript, container)
	cmd := exec.Command("/bin/sh", "-c", line)
	cmd.Env = append(os.Environ(), on.ProcessEnv()...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("removing the leftover container %s: %w: %s", container, err, out)
	}
	return strings.TrimSpace(string(out)), nil
}
