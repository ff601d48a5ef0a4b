#!/bin/sh
# network split, engine containers: moves the Postgres container of a stack from before the split
# (on the one stack network, now the edge network) to the data network in place, without a
# restart or a replacement (a protected database cannot be replaced). The program ignores changes
# of the container's networks for this reason; a new stack's database is created on the data
# network, and both steps do nothing.
#
#   db-network.sh join CONTAINER DATA_NETWORK     before the migration: also on the data network
#   db-network.sh leave CONTAINER EDGE_NETWORK    after the old replicas retired: off the edge
set -eu
step=$1
container=$2
network=$3
on() {
  docker inspect -f '{{range $n, $_ := .NetworkSettings.Networks}}{{$n}} {{end}}' "$container" | tr ' ' '\n' | grep -qx "$network"
}
case "$step" in
join)
  if ! on; then
    docker network connect "$network" "$container"
    echo "network split: $container joined $network"
  fi
  ;;
leave)
  if on; then
    docker network disconnect "$network" "$container"
    echo "network split: $container left $network"
  fi
  ;;
*)
  echo "db-network.sh: unknown step $step" >&2
  exit 2
  ;;
esac
