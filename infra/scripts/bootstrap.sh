#!/bin/sh
# Bootstrap of a Debian/Ubuntu Docker host, run over SSH by the Pulumi program (notes:bootstrap).
# Idempotent: when a docker CLI is already installed it only reports the versions and exits.
set -eu
if command -v docker >/dev/null 2>&1; then
  echo "bootstrap: docker is installed ($(docker --version 2>/dev/null || echo unknown version)); nothing to do"
  if ! docker info >/dev/null 2>&1; then
    echo "bootstrap: warning: $(id -un) cannot reach the Docker daemon (not running, or not in the docker group?)" >&2
  fi
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "bootstrap: docker is missing and this is not a Debian/Ubuntu host (no apt-get); install Docker by hand" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
  if ! sudo -n true 2>/dev/null; then
    echo "bootstrap: $(id -un) needs passwordless sudo to install Docker" >&2
    exit 1
  fi
  SUDO="sudo -n"
fi
echo "bootstrap: installing docker.io"
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io ca-certificates
if command -v systemctl >/dev/null 2>&1; then
  $SUDO systemctl enable --now docker || true
fi
if [ "$(id -u)" != 0 ]; then
  $SUDO usermod -aG docker "$(id -un)"
  echo "bootstrap: added $(id -un) to the docker group (effective on the next SSH login)"
fi
docker --version
