#!/bin/sh
# engine swarm: watches the rolling update of SERVICE to REVISION next to the docker provider,
# which waits for it (convergeConfig) but reports a rollback only as "rollback completed", and
# deletes a service whose create does not converge, its tasks' errors with it. This prints the
# tasks (`docker service ps --no-trunc`, with their errors) when the update fails, rolls back or
# the service disappears, and fails then; it succeeds once SERVICE runs REVISION and its update
# (if any) completed with every task running. An update status that was there when it started (an earlier failed
# `pulumi up`) is not taken for this one; when no update of REVISION starts at all (the provider
# believes an earlier, rolled-back one applied), it fails with that.
#
#   swarm-watch.sh SERVICE REVISION TIMEOUT_SECONDS
set -u
svc=$1
rev=$2
timeout=$3
quiet=45
fmt='{{range .Spec.TaskTemplate.ContainerSpec.Env}}{{.}} {{end}}|{{if .UpdateStatus}}{{.UpdateStatus.State}}|{{.UpdateStatus.StartedAt}}|{{.UpdateStatus.Message}}{{else}}none||{{end}}'
# running: every desired task of SERVICE is running (healthy, for a task with a healthcheck).
running() {
  r=$(docker service ls --filter "name=$svc" --format '{{.Name}} {{.Replicas}}' | sed -n "s|^$svc \([0-9]*\)/\([0-9]*\).*|\1 \2|p")
  [ -n "$r" ] && [ "${r#* }" -gt 0 ] && [ "${r% *}" -ge "${r#* }" ]
}
tasks() { docker service ps --no-trunc --format 'table {{.Name}}\t{{.Image}}\t{{.DesiredState}}\t{{.CurrentState}}\t{{.Error}}' "$svc" 2>/dev/null; }
fail() {
  echo "phase swarm: FAILED: $*; the tasks of $svc:" >&2
  printf '%s\n' "$last_tasks" >&2
  exit 1
}
start=$(date +%s)
initial=
seen=false
last_tasks=
while :; do
  if info=$(docker service inspect -f "$fmt" "$svc" 2>/dev/null); then
    t=$(tasks) && last_tasks=$t
    env=${info%%|*}
    rest=${info#*|}
    state=${rest%%|*}
    rest=${rest#*|}
    started=${rest%%|*}
    message=${rest#*|}
    if [ "$seen" = false ]; then
      initial=$started
      seen=true
    fi
    case " $env " in *" NOTES_REVISION=$rev "*) current=true ;; *) current=false ;; esac
    fresh=false
    if [ "$started" != "$initial" ] || [ "$state" = updating ]; then fresh=true; fi
    case $state in
      rollback_* | paused)
        if [ "$fresh" = true ]; then fail "the update to revision $rev did not converge ($state: $message)"; fi
        ;;
      completed | none)
        if [ "$current" = true ] && running && { [ "$fresh" = true ] || [ $(($(date +%s) - start)) -ge 20 ]; }; then
          echo "phase swarm: $svc runs revision $rev (update: $state)"
          exit 0
        fi
        ;;
    esac
    # After a rolled-back update the provider records the new spec as applied, so the next
    # `pulumi up` of the same revision updates nothing: say so instead of waiting.
    if [ "$fresh" = false ] && [ "$current" = false ] && [ $(($(date +%s) - start)) -ge "$quiet" ]; then
      fail "$svc does not run revision $rev and no update of it started within ${quiet}s: an earlier update to it was rolled back (${state}: ${message}), and the provider recorded it as applied. Deploy another version, or run \`pulumi refresh\` first to retry this one"
    fi
  elif [ "$seen" = true ]; then
    fail "the service $svc disappeared (the provider deletes a service whose create did not converge)"
  fi
  if [ $(($(date +%s) - start)) -ge "$timeout" ]; then
    fail "$svc did not run revision $rev within ${timeout}s"
  fi
  sleep 2
done
