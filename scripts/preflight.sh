#!/usr/bin/env bash
# scripts/preflight.sh: checks in a second or two what `pulumi up/preview/destroy` of $STACK needs
# (Go, the Pulumi CLI, the docker CLI and a daemon that answers at the stack's notes:dockerHost) and
# stops with one line naming what is missing and how to get it. It reads the committed
# Pulumi.$STACK.yaml itself rather than asking pulumi, which would cost more than the check.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
stack=${STACK:-dev}
file=${NOTES_STACK_FILE:-$root/Pulumi.$stack.yaml}
setup_hint="make setup (Debian, as root)"

die() { echo "preflight: $*" >&2; exit 1; }

command -v go >/dev/null || die "Go is not installed: https://go.dev/doc/install (the Pulumi program and the service are Go)"
want=$(awk '$1 == "go" { print $2; exit }' "$root/go.mod")
have=$(go env GOVERSION 2>/dev/null | sed 's/^go//')
if [ "$(printf '%s\n%s\n' "$want" "$have" | sort -V | head -1)" != "$want" ]; then
  die "Go $have is older than go.mod's go $want: install a newer one from https://go.dev/doc/install"
fi
# shellcheck source=scripts/pulumi-env.sh
source "$root/scripts/pulumi-env.sh" || exit 1
[ -f "$file" ] || die "no stack file $file (STACK=$stack): copy Pulumi.dev.yaml to start one"

# shellcheck source=scripts/docker-host.sh
source "$root/scripts/docker-host.sh"
host=$(stack_file_value "$file" dockerHost)
host=${host:-unix:///var/run/docker.sock}
docker_host_init "$host" "$file" 2>/dev/null || die "notes:dockerHost $host in $file must start with unix://, tcp:// or ssh://"

case $host in
  tcp://*)
    # TLS client material is secret: only pulumi can decrypt it (a second or so, and only for a
    # stack that has it).
    # shellcheck source=scripts/stack-env.sh
    source "$root/scripts/stack-env.sh" || exit 1
    if has_key notes:dockerTlsCa; then
      pulumi_stack stack select >/dev/null 2>&1 || die "stack $stack does not exist yet, but has notes:dockerTlsCa: set the TLS secrets with make secret KEY=notes:dockerTlsCa (and Cert, Key)"
      merge_config || exit 1
      docker_tls_init config_value || die "cannot read notes:dockerTlsCa, dockerTlsCert and dockerTlsKey of stack $stack"
    fi
    ;;&
  unix://* | tcp://*)
    command -v docker >/dev/null || die "the docker CLI is not installed: $setup_hint, or https://docs.docker.com/engine/install/"
    if ! err=$(host_timeout=5 on_host docker version --format '{{.Server.Version}}' 2>&1 >/dev/null); then
      die "no Docker daemon answers at $host (notes:dockerHost in $file): start one: $setup_hint starts dockerd [${err##*$'\n'}]"
    fi
    ;;
  ssh://*)
    command -v ssh >/dev/null || die "ssh is not installed: apt-get install openssh-client"
    ssh_args=(-o BatchMode=yes "${ssh_args[@]}")
    if ! err=$(host_timeout=10 on_host docker version --format '{{.Server.Version}}' 2>&1 >/dev/null); then
      die "no Docker daemon answers over $host (notes:dockerHost, notes:sshOpts in $file): check the key, known_hosts and that the user may run docker [${err##*$'\n'}]"
    fi
    ;;
esac
