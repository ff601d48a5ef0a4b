#!/usr/bin/env bash
# infra/preview-test.sh [--up]
#
# CI check of the Pulumi program against a local dockerd: a throwaway stack whose config mirrors
# Pulumi.dev.yaml (free loopback ports, random secrets), a file backend and a passphrase in a
# temp dir, then `pulumi preview`. With --up it also runs `pulumi up`, a second
# `pulumi up --expect-no-changes`, and `pulumi destroy`, and checks nothing of the stack is left.
#
# Needs: a running dockerd (DOCKER_HOST or /var/run/docker.sock), the images named by the dev
# config (postgres:17, nginx:1.27, golang:1.26; on offline machines ../shared/standin/build.sh
# --tag-official provides them), and the Pulumi CLI with the docker and command plugins (on the
# team's machines ../shared/tools/install-pulumi.sh, which this script uses when present).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
mode=${1:-preview}

if [ -x "$root/../shared/tools/install-pulumi.sh" ]; then
  eval "$("$root/../shared/tools/install-pulumi.sh")"
fi
command -v pulumi >/dev/null || { echo "preview-test: pulumi is not installed" >&2; exit 1; }
docker info >/dev/null 2>&1 || { echo "preview-test: no Docker daemon answers" >&2; exit 1; }

work=$(mktemp -d)
stack="ci$(head -c4 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export PULUMI_BACKEND_URL="file://$work/state" PULUMI_CONFIG_PASSPHRASE="$(head -c 24 /dev/urandom | base64)"
export PULUMI_SKIP_UPDATE_CHECK=true PULUMI_DIY_BACKEND_NO_LOCK=false
mkdir -p "$work/state"
cfgfile="$work/Pulumi.$stack.yaml"
cleanup() {
  rc=$?
  if [ "$mode" = --up ] && [ -f "$work/deployed" ]; then
    pulumi destroy --yes --non-interactive -s "$stack" --config-file "$cfgfile" >"$work/destroy.log" 2>&1 || { cat "$work/destroy.log" >&2; rc=1; }
  fi
  pulumi stack rm --yes --force -s "$stack" >/dev/null 2>&1 || true
  rm -rf "$work"
  exit $rc
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cd "$root"
pulumi stack init "$stack" >/dev/null
# The dev stack's config with this stack's ports, from the committed Pulumi.dev.yaml.
sed -e "s/^  notes:httpPort: .*/  notes:httpPort: \"$(free_port)\"/" \
    -e "s/^  notes:dbPort: .*/  notes:dbPort: \"$(free_port)\"/" Pulumi.dev.yaml >"$cfgfile"
gen() { head -c 32 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 24; }
pulumi config set --secret dbPassword "$(gen)" -s "$stack" --config-file "$cfgfile"
pulumi config set --secret appDbPassword "$(gen)" -s "$stack" --config-file "$cfgfile"
pulumi config set rateLimit 0 -s "$stack" --config-file "$cfgfile"

start=$(date +%s)
pulumi preview --non-interactive -s "$stack" --config-file "$cfgfile"
echo "preview-test: preview of $stack passed in $(( $(date +%s) - start ))s"
[ "$mode" = --up ] || exit 0

touch "$work/deployed"
start=$(date +%s)
pulumi up --yes --non-interactive --skip-preview -s "$stack" --config-file "$cfgfile"
echo "preview-test: up in $(( $(date +%s) - start ))s"
health=$(pulumi stack output healthUrl -s "$stack")
curl -fsS "$health" >/dev/null && echo "preview-test: $health answers"
pulumi up --yes --non-interactive --expect-no-changes -s "$stack" --config-file "$cfgfile"
pulumi stack export -s "$stack" >"$work/state.json"
for key in dbPassword appDbPassword; do
  v=$(pulumi config get "$key" -s "$stack" --config-file "$cfgfile")
  if grep -qF "$v" "$work/state.json"; then echo "preview-test: $key in clear in the state" >&2; exit 1; fi
done
start=$(date +%s)
pulumi destroy --yes --non-interactive -s "$stack" --config-file "$cfgfile"
rm -f "$work/deployed"
echo "preview-test: destroy in $(( $(date +%s) - start ))s"
left=$(docker ps -aq --filter "label=com.notes-stack.stack=$stack"; docker volume ls -q --filter "label=com.notes-stack.stack=$stack"; docker network ls -q --filter "label=com.notes-stack.stack=$stack")
if [ -n "$left" ]; then echo "preview-test: left behind: $left" >&2; exit 1; fi
echo "preview-test: up/no-change/destroy of $stack passed"
