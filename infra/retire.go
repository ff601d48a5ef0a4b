package main

import (
	_ "embed"
	"strconv"
	"time"

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
	Network   string                   // the stack network, where the replica alias lives
	AliasWait time.Duration            // after leaving the alias, before SIGTERM
	Keep      pulumi.StringArrayOutput // the current replicas' names
	After     []pulumi.Resource        // the proof (smoke check) of the new replicas
}

// retireInFlightMargin is added to nginx's DNS cache time before an old replica gets SIGTERM:
// requests nginx sent it just before the cache expired finish in it.
const retireInFlightMargin = 2 * time.Second

// NewRetire is the last step of the roll-out phase (scripts/retire.sh): once the new replicas are
// proven (After), every other replica of the stack leaves the replica alias, nginx's DNS cache
// expires, then it gets SIGTERM and drains, and it is removed. Pass pulumi.Parent(app): it is
// named and parented as part of the App.
//
// Replicas carry RetainOnDelete, so Pulumi itself never stops one. Left to Pulumi, a deploy that
// fails after new replicas were created (a replica that never turns healthy) leaves the old
// replicas "pending delete" in the state, and the next `pulumi up` deletes those first, while
// they are still serving. Here a replica is stopped only after the proof passed, by this
// command, whatever happened before. The current names are arguments in the command text, so a
// new list is an update (not a replacement, which would run Delete); Delete, on destroy, removes
// every replica of the stack.
func NewRetire(ctx *pulumi.Context, name string, args *RetireArgs, opts ...pulumi.ResourceOption) (*local.Command, error) {
	grace := strconv.Itoa(args.StopGrace)
	wait := strconv.Itoa(int(args.AliasWait.Round(time.Second).Seconds()))
	create := args.Keep.ApplyT(func(names []string) string {
		cmd, _ := args.OnHost.Script(retireScript, append([]string{args.Stack, args.Network, wait, grace}, names...)...)
		return cmd
	}).(pulumi.StringOutput)
	del, env := args.OnHost.Script(retireScript, args.Stack, args.Network, "0", grace)
	return local.NewCommand(ctx, name, &local.CommandArgs{
		Create:      create,
		Delete:      pulumi.String(del),
		Environment: env,
		Logging:     local.LoggingStdoutAndStderr,
	}, append(opts, pulumi.DependsOn(args.After))...)
}
