#!/bin/sh
# engine swarm with notes:workers: a worker's membership, from the manager's side and the
# worker's. Idempotent: a worker that is a node of this swarm already is left as it is.
#
#   swarm-worker.sh token     on the manager: its swarm address and the worker join token (two lines)
#   swarm-worker.sh join      on a worker, stdin = token's output: joins the swarm; prints the node id
#   swarm-worker.sh drain     on the manager, stdin = node id: drains the node and waits (2 min at most)
#                             until none of its tasks runs
#   swarm-worker.sh leave     on the worker: leaves the swarm
#   swarm-worker.sh remove    on the manager, stdin = node id: removes the node once it is down
set -eu
case $1 in
  token)
    docker info --format '{{.Swarm.NodeAddr}}'
    docker swarm join-token -q worker
    ;;
  join)
    # $(cat), not read: the input has no final newline (Pulumi trims a command's stdout).
    input=$(cat)
    mgr=$(printf '%s\n' "$input" | sed -n 1p)
    token=$(printf '%s\n' "$input" | sed -n 2p)
    if [ -z "$mgr" ] || [ -z "$token" ]; then
      echo "phase swarm: FAILED: no manager address and join token on stdin" >&2
      exit 1
    fi
    state=$(docker info --format '{{.Swarm.LocalNodeState}}')
    case $state in
      active)
        if docker info --format '{{range .Swarm.RemoteManagers}}{{.Addr}}{{"\n"}}{{end}}' | grep -qx "$mgr:2377"; then
          echo "phase swarm: this host is a node of the swarm already" >&2
        else
          echo "phase swarm: FAILED: this host is a node of another swarm (not managed by $mgr): docker swarm leave first" >&2
          exit 1
        fi
        ;;
      inactive)
        # The address this host reaches the manager from: without --advertise-addr a join
        # can pick another interface and time out.
        src=$(ip -o route get "$mgr" 2>/dev/null | sed -n 's/.* src \([^ ]*\).*/\1/p')
        if [ -n "$src" ]; then
          docker swarm join --advertise-addr "$src" --token "$token" "$mgr:2377" >&2
        else
          docker swarm join --token "$token" "$mgr:2377" >&2
        fi
        echo "phase swarm: joined the swarm of $mgr as a worker${src:+ (advertising $src)}" >&2
        ;;
      *)
        echo "phase swarm: FAILED: the Docker daemon's swarm state is '$state'" >&2
        exit 1
        ;;
    esac
    docker info --format '{{.Swarm.NodeID}}'
    ;;
  drain)
    node=$(cat)
    if ! docker node inspect "$node" >/dev/null 2>&1; then
      echo "phase swarm: node $node is not in the swarm any more" >&2
      exit 0
    fi
    docker node update --availability drain "$node" >/dev/null
    i=0
    while [ -n "$(docker node ps -q --filter desired-state=running "$node")" ]; do
      i=$((i + 1))
      if [ "$i" -ge 120 ]; then
        echo "phase swarm: tasks still run on node $node after 2 minutes; going on" >&2
        break
      fi
      sleep 1
    done
    echo "phase swarm: drained node $node" >&2
    ;;
  leave)
    if [ "$(docker info --format '{{.Swarm.LocalNodeState}}')" != inactive ]; then
      docker swarm leave >/dev/null
      echo "phase swarm: this host left the swarm" >&2
    fi
    ;;
  remove)
    node=$(cat)
    docker node inspect "$node" >/dev/null 2>&1 || exit 0
    i=0
    until [ "$(docker node inspect -f '{{.Status.State}}' "$node")" = down ] || [ "$i" -ge 30 ]; do
      i=$((i + 1))
      sleep 1
    done
    docker node rm --force "$node" >/dev/null
    echo "phase swarm: removed node $node from the swarm" >&2
    ;;
  *)
    echo "usage: swarm-worker.sh token|join|drain|leave|remove" >&2
    exit 2
    ;;
esac
