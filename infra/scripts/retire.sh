#!/bin/sh
# phase roll out, last step: retires every replica container of the stack whose name is not one
# of KEEP (with no KEEP, on pulumi destroy, all of them). Run on the Docker host once the new
# replicas are proven (scripts/prove.sh).
#
#   retire.sh STACK NETWORK ALIAS_WAIT STOP_GRACE [KEEP...]
#
# For each old replica, in this order:
#  1. it leaves the replica alias: disconnected from NETWORK and connected again at once without
#     the alias. Docker gives it back its address, so requests in flight on established
#     connections complete (a plain disconnect leaves them hanging until nginx times out);
#  2. ALIAS_WAIT seconds pass: longer than nginx's DNS cache (resolver valid=), so nginx sends
#     no new request to it, and requests it already sent finish;
#  3. SIGTERM and drain: docker stop gives it STOP_GRACE seconds before SIGKILL;
#  4. docker rm -v.
set -eu
stack=$1
network=$2
wait_s=$3
grace=$4
shift 4
keep=" $* "
old=$(docker ps -a --filter "label=com.notes-stack.stack=$stack" --filter label=com.notes-stack.role=app --format '{{.Names}}' |
  while read -r n; do case "$keep" in *" $n "*) ;; *) echo "$n" ;; esac; done)
if [ -z "$old" ]; then
  echo "phase roll out: retire: no old replicas"
  exit 0
fi
addr() { docker inspect -f "{{with index .NetworkSettings.Networks \"$network\"}}{{.IPAddress}}{{end}}" "$1"; }
left=
for n in $old; do
  if [ "$(docker inspect -f '{{.State.Running}}' "$n")" != true ] || [ -z "$(addr "$n")" ]; then
    continue
  fi
  before=$(addr "$n")
  docker network disconnect "$network" "$n"
  docker network connect "$network" "$n"
  after=$(addr "$n")
  echo "phase roll out: retire: $n left the replica alias ($before -> $after)"
  if [ "$before" != "$after" ]; then
    echo "phase roll out: retire: warning: $n got a new address; its open connections are lost" >&2
  fi
  left=1
done
if [ -n "$left" ]; then
  echo "phase roll out: retire: waiting ${wait_s}s (nginx DNS cache and requests in flight)"
  sleep "$wait_s"
fi
# $old is a list of container names (no spaces in them): split on purpose.
# shellcheck disable=SC2086
{
  echo "phase roll out: retire: stopping" $old
  docker stop -t "$grace" $old >/dev/null
  docker rm -v $old >/dev/null
  echo "phase roll out: retire: removed" $old
}
