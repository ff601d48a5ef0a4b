#!/usr/bin/env bash
# Prepares a Debian machine (as root) for the whole test suite: installs the packages the tests
# use, starts dockerd when none answers, makes the base images available and installs the
# Pulumi CLI. Idempotent: a second run only checks.
# The team's offline tools and image stand-ins come from the shared folder: $NOTES_SHARED_DIR, else
# ../shared next to the repository (see scripts/pulumi-env.sh).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
shared=${NOTES_SHARED_DIR:-$root/../shared}

pkgs=(docker.io debootstrap nginx-light openssh-server iproute2 iptables util-linux postgresql-15 postgresql-client-15 wrk curl xz-utils ca-certificates jq shellcheck pebble)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "ci-setup: installing ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian's nginx and postgresql packages start system services; the tests run their own.
systemctl disable --now nginx postgresql >/dev/null 2>&1 || true

if ! docker info >/dev/null 2>&1; then
  echo "ci-setup: starting dockerd" >&2
  getent group docker >/dev/null || groupadd --system docker
  nohup dockerd -G docker >/var/log/dockerd-notes-ci.log 2>&1 &
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { echo "ci-setup: dockerd did not start, see /var/log/dockerd-notes-ci.log" >&2; exit 1; }
fi

# The stack's public base images. Where no registry answers (the team's CI machines), the
# local stand-ins from $shared/standin replace them.
images=(postgres:17 nginx:1.27 golang:1.26)
need_standin=false
for img in "${images[@]}"; do
  docker image inspect "$img" >/dev/null 2>&1 && continue
  docker pull -q "$img" >/dev/null 2>&1 || need_standin=true
done
standin="$shared/standin/build.sh"
if $need_standin || { [ -x "$standin" ] && docker image inspect -f '{{index .Config.Labels "standin.stamp"}}' postgres:17 2>/dev/null | grep -q .; }; then
  [ -x "$standin" ] || { echo "ci-setup: cannot pull ${images[*]} and no stand-in builder at $standin (set NOTES_SHARED_DIR to the team's shared folder)" >&2; exit 1; }
  "$standin" --tag-official >&2
fi

# shellcheck source=scripts/pulumi-env.sh
source "$root/scripts/pulumi-env.sh"
pulumi version >&2
