#!/bin/sh
# engine swarm: makes the stack's Docker daemon a Swarm manager when it is in no swarm yet
# (`docker swarm init`, said in the log), refuses a daemon that is a worker, and labels the
# daemon's node for the stack's stateful and edge services (Postgres and the backups next to
# their volumes, nginx with its host-mode ports). Idempotent. `release` removes the labels (the
# swarm stays: other stacks may use it; `docker swarm leave --force` undoes the init).
#
#   swarm-manager.sh init STACK [ADVERTISE_ADDR]
#   swarm-manager.sh release STACK
set -eu
mode=$1
stack=$2
db_label=com.notes-stack.$stack.db
edge_label=com.notes-stack.$stack.edge
case $mode in
  init)
    addr=${3:-}
    state=$(docker info --format '{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}')
    case $state in
      "active true")
        echo "phase swarm: the Docker daemon is a swarm manager already"
        ;;
      "inactive "*)
        if [ -n "$addr" ]; then
          docker swarm init --advertise-addr "$addr" >/dev/null
        else
          docker swarm init >/dev/null
        fi
        echo "phase swarm: the Docker daemon was in no swarm: ran docker swarm init${addr:+ --advertise-addr $addr}; it is now a single-node swarm manager (docker swarm leave --force undoes this once no service runs)"
        ;;
      *)
        echo "phase swarm: FAILED: the Docker daemon's swarm state is '$state', not a manager: deploy to a manager of the swarm (or promote this node: docker node promote)" >&2
        exit 1
        ;;
    esac
    node=$(docker info --format '{{.Swarm.NodeID}}')
    docker node update --label-add "$db_label=true" --label-add "$edge_label=true" "$node" >/dev/null
    echo "phase swarm: node $node carries $db_label and $edge_label"
    ;;
  release)
    node=$(docker info --format '{{.Swarm.NodeID}}')
    if [ -n "$node" ] && docker node inspect "$node" >/dev/null 2>&1; then
      for l in "$db_label" "$edge_label"; do
        docker node update --label-rm "$l" "$node" >/dev/null 2>&1 || true
      done
      echo "phase swarm: removed the stack's labels from node $node (the swarm stays)"
    fi
    ;;
  *)
    echo "usage: swarm-manager.sh init STACK [ADVERTISE_ADDR] | release STACK" >&2
    exit 2
    ;;
esac
