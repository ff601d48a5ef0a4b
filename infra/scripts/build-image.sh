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
  docker push "$ref" >&2
fi
echo "phase build: built $ref as $(cat "$iid")" >&2
cat "$iid"
