#!/bin/sh
# phase roll out, last step: retires every replica container of the stack whose name is not one
# of KEEP (with no KEEP, on pulumi destroy, all of them). Run on the Docker host once the new
# replicas are proven (scripts/prove.sh).
#
#   retire.sh STACK NETWORK DRAIN_WAIT ALIAS_WAIT [KEEP...]
#
# The old replicas, all at once, in this order:
#  1. SIGTERM: each drains. It keeps serving for its DRAIN_DELAY, then refuses new connections
#     and serves those the kernel already accepted (nginx fails over on a refused connection, even
#     for a POST, since nothing was sent), finishes what is in flight and logs
#     "shutdown: drained". It then lingers (SHUTDOWN_LINGER) with its address up: connecting to
#     it is refused at once. The script waits up to DRAIN_WAIT seconds for that line;
#  2. it leaves the replica alias: disconnected from NETWORK and connected again at once without
#     the alias. Nothing is in flight on it any more, so the disconnect cuts nothing, and Docker
#     gives it its address back, so nginx, whose cached DNS answer may still name it, is refused rather
#     than left waiting for an address that vanished;
#  3. ALIAS_WAIT seconds pass: longer than the DNS cache of nginx (resolver valid=);
#  4. docker rm -f -v: the drained, lingering process is killed and the container removed.
set -eu
stack=$1
network=$2
drain_wait=$3
alias_wait=$4
shift 4
keep=" $* "
old=$(docker ps -a --filter "label=com.notes-stack.stack=$stack" --filter label=com.notes-stack.role=app --format '{{.Names}}' |
  while read -r n; do case "$keep" in *" $n "*) ;; *) echo "$n" ;; esac; done)
if [ -z "$old" ]; then
  echo "phase roll out: retire: no old replicas"
  exit 0
fi
running() { [ "$(docker inspect -f '{{.State.Running}}' "$1")" = true ]; }
addr() { docker inspect -f "{{with index .NetworkSettings.Networks \"$network\"}}{{.IPAddress}}{{end}}" "$1"; }

since=$(date +%s)
draining=
for n in $old; do
  if running "$n"; then
    docker kill --signal TERM "$n" >/dev/null
    draining="$draining $n"
  fi
done
if [ -n "$draining" ]; then
  echo "phase roll out: retire: draining$draining"
fi

# 1. wait for each drained line (or for the process to be gone).
deadline=$(($(date +%s) + drain_wait))
left=
for n in $draining; do
  until docker logs --since "$since" "$n" 2>&1 | grep -q '"msg":"shutdown: drained"'; do
    if ! running "$n"; then
      echo "phase roll out: retire: $n exited while draining" >&2
      continue 2
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
      echo "phase roll out: retire: warning: $n did not report drained within ${drain_wait}s; removing it anyway" >&2
      continue 2
    fi
    sleep 0.2
  done
  # 2. out of the alias, same address.
  before=$(addr "$n")
  if [ -n "$before" ]; then
    docker network disconnect "$network" "$n"
    docker network connect "$network" "$n"
    after=$(addr "$n")
    echo "phase roll out: retire: $n drained and left the replica alias ($before -> $after)"
    if [ "$before" != "$after" ]; then
      echo "phase roll out: retire: warning: $n got a new address; nginx may wait for a connect timeout on the old one for ${alias_wait}s" >&2
    fi
    left=1
  fi
done

# What went wrong in a drain (a listener closed without quiescing, requests cut off at the
# timeout) is in the replica's log, which goes with it: say it here.
for n in $draining; do
  docker logs --since "$since" "$n" 2>&1 | grep '"level":"\(WARN\|ERROR\)"\|"msg":"shutdown' | sed "s/^/phase roll out: retire: $n: /" >&2 || true
done

# 3. The DNS cache of nginx forgets the drained replicas.
if [ -n "$left" ]; then
  echo "phase roll out: retire: waiting ${alias_wait}s (nginx DNS cache)"
  sleep "$alias_wait"
fi

# 4. $old is a list of container names (no spaces in them): split on purpose.
# shellcheck disable=SC2086
{
  docker rm -f -v $old >/dev/null
  echo "phase roll out: retire: removed" $old
}
