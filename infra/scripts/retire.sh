#!/bin/sh
# phase roll out, last step: stops (SIGTERM, then STOP_GRACE seconds before SIGKILL) and removes
# every replica container of the stack whose name is not one of KEEP. Run on the Docker host
# once nginx routes only to the KEEP replicas; with no KEEP (pulumi destroy) it removes all.
#
#   retire.sh STACK STOP_GRACE [KEEP...]
set -eu
stack=$1
grace=$2
shift 2
keep=" $* "
old=$(docker ps -a --filter "label=com.notes-stack.stack=$stack" --filter label=com.notes-stack.role=app --format '{{.Names}}' |
  while read -r n; do case "$keep" in *" $n "*) ;; *) echo "$n" ;; esac; done)
if [ -z "$old" ]; then
  echo "phase roll out: retire: no old replicas"
  exit 0
fi
# $old is a list of container names (no spaces in them): split on purpose.
# shellcheck disable=SC2086
{
  echo "phase roll out: retire: stopping" $old
  docker stop -t "$grace" $old >/dev/null
  docker rm $old >/dev/null
  echo "phase roll out: retire: removed" $old
}
