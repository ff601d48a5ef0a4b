#!/bin/sh
# engine swarm, the stack's own registry (notes:workers without notes:pushRegistry): makes this
# node's Docker daemon trust the registry's CA, or takes the trust back. The daemon reads
# /etc/docker/certs.d/ADDR/ca.crt at every pull and push from ADDR. The file is written by a
# throwaway container of the node's own daemon, not by the ssh user: the docker group is all
# the deploy user needs (no sudo), it works the same over tcp://, and the file lands on the
# file system that daemon reads.
#
#   registry-trust.sh add ADDR IMAGE      CA certificate (PEM) on stdin
#   registry-trust.sh remove ADDR IMAGE
#
# IMAGE is any image with sh, mkdir, cat, mv and rm (the stack's nginx image).
set -eu
action=$1
addr=$2
image=$3
case $action in
  add)
    docker run --rm -i --network none --user 0 -v /etc/docker:/etc-docker --entrypoint sh "$image" \
      -c 'd=/etc-docker/certs.d/$1 && mkdir -p "$d" && cat >"$d/ca.crt.new" && mv "$d/ca.crt.new" "$d/ca.crt"' sh "$addr"
    echo "phase registry: this node trusts $addr" >&2
    ;;
  remove)
    # certs.d itself goes too when this was its last entry (the add may have made it).
    docker run --rm --network none --user 0 -v /etc/docker:/etc-docker --entrypoint sh "$image" \
      -c 'd=/etc-docker/certs.d && rm -f "$d/$1/ca.crt" && { rmdir "$d/$1" "$d" 2>/dev/null || true; }' sh "$addr"
    echo "phase registry: this node no longer trusts $addr" >&2
    ;;
  *)
    echo "registry-trust.sh: unknown action $action" >&2
    exit 2
    ;;
esac
