package main

import (
	_ "embed"
	"strconv"

	"github.com/pulumi/pulumi-command/sdk/go/command/local"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

//go:embed scripts/retire.sh
var retireScript string

// RetireArgs is what the retire command uses.
type RetireArgs struct {
	Stack     string
	OnHost    OnHost
	StopGrace int                      // seconds between SIGTERM and SIGKILL
	Keep      pulumi.StringArrayOutput // the current replicas' names
	After     []pulumi.Resource        // what must be live first (nginx config, smoke check)
}

// NewRetire is the last step of the roll-out phase: it stops and removes the replicas that are
// no longer in the upstream list, once Nginx runs the new list (and the smoke check, when on,
// has passed). Pass pulumi.Parent(app): it is named and parented as part of the App.
//
// Replicas carry RetainOnDelete, so Pulumi itself never stops one. Left to Pulumi, a deploy that
// fails after new replicas were created (a replica that never turns healthy, an SSH drop during
// the Nginx reload) leaves the old replicas "pending delete" in the state, and the next
// `pulumi up` deletes those first, while Nginx still routes all traffic to them. Here a replica is
// stopped only after the configuration without it is live, by this command, whatever happened
// before. The current names are arguments in the command text, so a new list is an update (not a
// replacement, which would run Delete); Delete, on destroy, removes every replica of the stack.
func NewRetire(ctx *pulumi.Context, name string, args *RetireArgs, opts ...pulumi.ResourceOption) (*local.Command, error) {
	grace := strconv.Itoa(args.StopGrace)
	create := args.Keep.ApplyT(func(names []string) string {
		cmd, _ := args.OnHost.Script(retireScript, append([]string{args.Stack, grace}, names...)...)
		return cmd
	}).(pulumi.StringOutput)
	del, env := args.OnHost.Script(retireScript, args.Stack, grace)
	return local.NewCommand(ctx, name, &local.CommandArgs{
		Create:      create,
		Delete:      pulumi.String(del),
		Environment: env,
		Logging:     local.LoggingStdoutAndStderr,
	}, append(opts, pulumi.DependsOn(args.After))...)
}
