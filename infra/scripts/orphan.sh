#!/bin/sh
# Runs on the Docker host right before Pulumi creates the container NAME (a resource hook). Such a
# container exists only when an earlier `pulumi up` was cut off between creating it and recording
# it (an SSH connection dropped, the machine running Pulumi died): Docker would refuse the name
# and every later `pulumi up` would fail until someone removed it by hand. It is stopped (SIGTERM
# and its stop timeout: a replica drains) and removed; its named volumes stay.
#
#   orphan.sh NAME
set -eu
name=$1
if id=$(docker container inspect -f '{{.Id}}' "$name" 2>/dev/null); then
  echo "removing container $name ($id): left by an interrupted pulumi up" >&2
  docker stop "$name" >/dev/null
  docker rm "$name" >/dev/null
fi
