#!/bin/sh
# engine swarm: runs SQL from stdin (the owner's ALTER ROLE) with psql in the healthy task of the
# database service SERVICE on this Docker daemon (the node the database is pinned to), over the
# task's local socket, which the image trusts. Waits up to a minute for the task.
#
#   swarm-db-password.sh SERVICE OWNER DATABASE < statements.sql
set -eu
svc=$1
owner=$2
db=$3
i=0
while :; do
  id=$(docker ps -q --filter "label=com.docker.swarm.service.name=$svc" --filter health=healthy | head -n 1)
  [ -z "$id" ] || break
  i=$((i + 1))
  if [ "$i" -ge 30 ]; then
    echo "phase database: FAILED: no healthy task of $svc on this daemon" >&2
    exit 1
  fi
  sleep 2
done
exec docker exec -i "$id" psql -X -q -v ON_ERROR_STOP=1 -U "$owner" -d "$db"
