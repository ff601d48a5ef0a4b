#!/bin/sh
# engine swarm with notes:workers or notes:managerLabels: sets the stack's node labels
# (com.notes-stack.<stack>.db and .edge) on the manager to exactly the configured ones.
# Swarm moves a task whose node no longer satisfies its constraints.
#
#   swarm-labels.sh apply STACK NODE=ROLE[,ROLE]...   NODE: a node id, or self (this manager)
#   swarm-labels.sh reset STACK                       back to one host: both labels on self only
set -eu
mode=$1
stack=$2
shift 2
self=$(docker info --format '{{.Swarm.NodeID}}')
set_roles() { # node roles
  for role in db edge; do
    label=com.notes-stack.$stack.$role
    case ",$2," in
      *",$role,"*) docker node update --label-add "$label=true" "$1" >/dev/null ;;
      *) docker node update --label-rm "$label" "$1" >/dev/null 2>&1 || true ;;
    esac
  done
  echo "phase swarm: node $1 carries the stack's labels: ${2:-none}"
}
case $mode in
  apply)
    listed=" "
    for spec in "$@"; do
      node=${spec%%=*}
      [ "$node" = self ] && node=$self
      set_roles "$node" "${spec#*=}"
      listed="$listed$node "
    done
    for node in $(docker node ls -q); do
      case $listed in *" $node "*) ;; *) set_roles "$node" "" ;; esac
    done
    ;;
  reset)
    for node in $(docker node ls -q); do
      [ "$node" = "$self" ] || set_roles "$node" ""
    done
    set_roles "$self" db,edge
    ;;
  *)
    echo "usage: swarm-labels.sh apply STACK NODE=ROLES... | reset STACK" >&2
    exit 2
    ;;
esac
