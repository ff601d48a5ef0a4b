#!/usr/bin/env bash
# scripts/stack.sh ACTION [pulumi flags...]   ACTION: up | preview | destroy | outputs
# Runs Pulumi on the stack $STACK (default dev). With no PULUMI_BACKEND_URL it uses a file backend in
# .pulumi-state/, and with no passphrase it generates one there (mode 600). On first use it creates the
# stack and generates random dbPassword and appDbPassword secrets when the stack has none.
set -euo pipefail
source "$(dirname "$0")/pulumi-env.sh"
cd "$root"
action=${1:?usage: scripts/stack.sh up|preview|destroy|outputs [pulumi flags]}; shift
stack=${STACK:-dev}
if [ -z "${PULUMI_BACKEND_URL:-}" ]; then
  mkdir -p .pulumi-state
  export PULUMI_BACKEND_URL="file://$root/.pulumi-state"
fi
if [ -z "${PULUMI_CONFIG_PASSPHRASE:-}${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ]; then
  mkdir -p .pulumi-state
  f="$root/.pulumi-state/$stack.passphrase"
  [ -s "$f" ] || (umask 077 && head -c 32 /dev/urandom | base64 > "$f")
  export PULUMI_CONFIG_PASSPHRASE_FILE="$f"
fi
pulumi stack select --create "$stack" >/dev/null
gen() { head -c 32 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 32; }
if ! pulumi config get databaseUrl >/dev/null 2>&1; then
  for key in dbPassword appDbPassword; do
    if ! pulumi config get "$key" >/dev/null 2>&1; then
      echo "stack $stack: generating a random $key (stored encrypted in Pulumi.$stack.yaml)" >&2
      gen | pulumi config set --secret "$key" >/dev/null
    fi
  done
fi
case "$action" in
  up) pulumi up --yes "$@" ;;
  preview) pulumi preview "$@" ;;
  destroy) pulumi destroy --yes "$@" ;;
  outputs) pulumi stack output "$@" ;;
  *) echo "unknown action $action: want up, preview, destroy or outputs" >&2; exit 2 ;;
esac
