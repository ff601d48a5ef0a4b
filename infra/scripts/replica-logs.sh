#!/bin/sh
# phase smoke, after a failed check: prints the last 20 log lines of every replica container of
# the stack to stderr, so `pulumi up` shows why they did not answer. Run on the Docker host.
#
#   replica-logs.sh STACK
set -u
stack=$1
names=$(docker ps -a --filter "label=com.notes-stack.stack=$stack" --filter label=com.notes-stack.role=app --format '{{.Names}}')
if [ -z "$names" ]; then
  echo "phase smoke: no replica containers of stack $stack" >&2
  exit 0
fi
for n in $names; do
  echo "phase smoke: --- docker logs --tail 20 $n" >&2
  docker logs --tail 20 "$n" 1>&2 || true
done
