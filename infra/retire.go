package main

import (
	"fmt"
	"strings"

	"github.com/pulumi/pulumi-command/sdk/go/command/local"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// NewRetire stops and removes the replicas that are no longer in the upstream list, once Nginx
// runs the new list (and the smoke check, when on, has passed).
//
// Replicas carry RetainOnDelete, so Pulumi itself never stops one. Left to Pulumi, a deploy that
// fails after new replicas were created (a replica that never turns healthy, an SSH drop during
// the Nginx reload) leaves the old replicas "pending delete" in the state, and the next
// `pulumi up` deletes those first, while Nginx still routes all traffic to them. Here a replica is
// stopped only after the configuration without it is live, by this command, whatever happened
// before. The current names are part of the command text, so a new list is an update (not a
// replacement, which would run Delete); Delete, on destroy, removes every replica of the stack.
func NewRetire(ctx *pulumi.Context, cfg *Config, host *Host, app *App, after []pulumi.Resource) (*local.Command, error) {
	create := app.ReplicaNames.ApplyT(func(names []string) string {
		cmd, _ := host.ShellCommand(retireScript(cfg, names))
		return cmd
	}).(pulumi.StringOutput)
	del, env := host.ShellCommand(retireScript(cfg, nil))
	return local.NewCommand(ctx, cfg.Name("app", "retire"), &local.CommandArgs{
		Create:      create,
		Delete:      pulumi.String(del),
		Environment: env,
		Logging:     local.LoggingStdoutAndStderr,
	}, pulumi.Parent(app), pulumi.DependsOn(after))
}

// retireScript stops (SIGTERM, then the replicas' own grace period) and removes every replica
// container of the stack whose name is not in keep.
func retireScript(cfg *Config, keep []string) string {
	return fmt.Sprintf(`set -eu
keep=' %s '
old=$(docker ps -a --filter label=com.notes-stack.stack=%s --filter label=com.notes-stack.role=app --format '{{.Names}}' |
  while read -r n; do case "$keep" in *" $n "*) ;; *) echo "$n" ;; esac; done)
if [ -z "$old" ]; then echo "retire: no old replicas"; exit 0; fi
echo "retire: stopping" $old
docker stop -t %d $old >/dev/null
docker rm $old >/dev/null
echo "retire: removed" $old`, strings.Join(keep, " "), shellQuote(cfg.Stack), cfg.StopGrace())
}
