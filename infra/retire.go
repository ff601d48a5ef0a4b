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
	DrainWait time.Duration            // at most this from SIGTERM to the replica's "drained" line
	Network   string                   // the stack network, where the replica alias lives
	AliasWait time.Duration            // after leaving the alias, before the replica is removed
	Keep      pulumi.StringArrayOutput // the current replicas' names
	After     []pulumi.Resource        // the proof (smoke check) of the new replicas
}

// retireTimings are the durations of a replica's retirement (scripts/retire.sh).
type retireTimings struct {
	DrainWait time.Duration // SIGTERM to "drained", at most
	AliasWait time.Duration // out of the alias to removal: nginx's DNS cache and a margin
	// Linger is how long a drained replica keeps its address (SHUTDOWN_LINGER): the alias wait
	// and a margin for the script to see the drained line and take it out of the alias.
	Linger time.Duration
}

func newRetireTimings(drainWait, dnsValid time.Duration) retireTimings {
	alias := dnsValid + 2*time.Second
	return retireTimings{DrainWait: drainWait, AliasWait: alias, Linger: alias + 10*time.Second}
}

// StopGrace is how long Docker waits after SIGTERM before it kills a replica (docker stop by an
// operator, a daemon restart): the whole drain and the linger.
func (t retireTimings) StopGrace() int {
	return int((t.DrainWait + t.Linger + time.Second - 1) / time.Second)
}

// NewRetire is the last step of the roll-out phase (scripts/retire.sh): once the new replicas are
// proven (After), every other replica of the stack gets SIGTERM and drains (it refuses new
// connections, which nginx fails over on, and finishes those it has), then leaves the replica
// alias keeping its address, nginx's DNS cache expires, and it is removed. Leaving the alias
// first would cut the requests in flight on it (a network disconnect; measured, docs/infra.md).
// Pass pulumi.Parent(app): it is named and parented as part of the App.
//
// Replicas carry RetainOnDelete, so Pulumi itself never stops one. Left to Pulumi, a deploy that
// fails after new replicas were created (a replica that never turns healthy) leaves the old
// replicas "pending delete" in the state, and the next `pulumi up` deletes those first, while
// they are still serving. Here a replica is stopped only after the proof passed, by this
// command, whatever happened before. The current names are arguments in the command text, so a
// new list is an update (not a replacement, which would run Delete); Delete, on destroy, removes
// every replica of the stack.
func NewRetire(ctx *pulumi.Context, name string, args *RetireArgs, opts ...pulumi.ResourceOption) (*local.Command, error) {
	drain := seconds(args.DrainWait)
	wait := seconds(args.AliasWait)
	create := args.Keep.ApplyT(func(names []string) string {
		cmd, _ := args.OnHost.Script(retireScript, append([]string{args.Stack, args.Network, drain, wait}, names...)...)
		return cmd
	}).(pulumi.StringOutput)
	// On destroy nginx goes too: no alias wait.
	del, env := args.OnHost.Script(retireScript, args.Stack, args.Network, drain, "0")
	return local.NewCommand(ctx, name, &local.CommandArgs{
		Create:      create,
		Delete:      pulumi.String(del),
		Environment: env,
		Logging:     local.LoggingStdoutAndStderr,
	}, append(opts, pulumi.DependsOn(args.After))...)
}

// seconds is d in whole seconds, rounded up, as a script argument.
func seconds(d time.Duration) string {
	return strconv.Itoa(int((d + time.Second - 1) / time.Second))
}
