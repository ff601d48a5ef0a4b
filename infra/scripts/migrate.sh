#!/bin/sh
# phase migrate: runs `notes migrate up` once, in a container NAME of IMAGE created with the
# given docker create options, and removes that container whatever the outcome. The secrets
# arrive on stdin: a base64 tar.gz of run/secrets/* (mode 0400, owned by the service's user),
# copied into the created container before it starts, so they are never in its environment,
# labels or command line, and the exited container does not keep them. The exit status is the
# migration's; the last line says it.
#
#   migrate.sh NAME IMAGE [DOCKER-CREATE-OPTION...] < secrets.tar.gz.b64
set -eu
name=$1
image=$2
shift 2
# A container of an interrupted run (same revision) would block the name.
docker rm -f -v "$name" >/dev/null 2>&1 || true
trap 'docker rm -f -v "$name" >/dev/null 2>&1 || true' EXIT
docker create --name "$name" "$@" "$image" migrate up >/dev/null
base64 -d | docker cp - "$name:/"
code=0
docker start -a "$name" || code=$?
if [ "$code" -ne 0 ]; then
  echo "phase migrate: migration container $name exited with status $code; replicas were not changed." >&2
  exit "$code"
fi
echo "phase migrate: $name exited 0"
