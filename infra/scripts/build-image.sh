#!/bin/sh
# phase build: builds the service image on the stack's Docker daemon (legacy builder) from the
# context archive on stdin (a tar.gz of exactly the files the program hashed, ContextFiles) and
# prints the image id as the last line of stdout; build output goes to stderr. Run by the Pulumi
# program on the Docker host (locally with DOCKER_HOST, or over ssh).
#
#   build-image.sh REF GO_IMAGE APP_VERSION PUSH    # PUSH: true to also `docker push REF`
set -eu
ref=$1
go_image=$2
version=$3
push=$4
export DOCKER_BUILDKIT=0
iid=$(mktemp)
trap 'rm -f "$iid"' EXIT
echo "phase build: building $ref (GO_IMAGE=$go_image, APP_VERSION=$version)" >&2
docker build --iidfile "$iid" --build-arg "GO_IMAGE=$go_image" --build-arg "APP_VERSION=$version" -t "$ref" - >&2
if [ "$push" = true ]; then
  echo "phase build: pushing $ref" >&2
  # A few tries: the stack's own registry may have started a moment ago and not listen yet.
  tries=1
  until docker push "$ref" >&2; do
    if [ "$tries" -ge 5 ]; then
      echo "phase build: FAILED: docker push $ref failed $tries times" >&2
      exit 1
    fi
    tries=$((tries + 1))
    echo "phase build: push failed, try $tries of 5 in 2 s" >&2
    sleep 2
  done
fi
echo "phase build: built $ref as $(cat "$iid")" >&2
cat "$iid"
