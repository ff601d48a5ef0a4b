#!/bin/sh
# engine swarm with notes:pushRegistry: prints REF@sha256:... of the image that build-image.sh
# pushed (its repository digest, as the registry knows it), for the services to run by digest.
#
#   swarm-digest.sh REF     REF = registry[:port][/namespace]/name:tag
set -eu
ref=$1
repo=${ref%:*}
digest=$(docker image inspect --format '{{range .RepoDigests}}{{println .}}{{end}}' "$ref" | grep -F "$repo@" | head -n 1)
if [ -z "$digest" ]; then
  echo "phase build: FAILED: $ref has no digest of $repo: was it pushed?" >&2
  exit 1
fi
echo "phase build: $ref is ${digest#*@}" >&2
echo "$ref@${digest#*@}"
