#!/usr/bin/env bash
# scripts/stack.sh ACTION [pulumi flags...]
#   ACTION: up | preview | destroy | outputs | config | secret KEY
# Runs Pulumi on the stack $STACK (default dev) with the config that scripts/stack-env.sh builds:
# the committed Pulumi.$STACK.yaml (non-secret settings) plus the untracked
# .pulumi-state/stacks/$STACK.secrets.yaml. With no PULUMI_BACKEND_URL it uses a file backend in
# .pulumi-state/, and with no passphrase it generates one there (mode 600). On first use it creates
# the stack and random dbPassword and appDbPassword secrets (unless notes:databaseUrl is set).
#   secret KEY   reads a value from stdin (or a prompt) into the secrets file: KEY=notes:tlsKey
set -euo pipefail
here=$(dirname "$0")
action=${1:?usage: scripts/stack.sh up|preview|destroy|outputs|config|secret KEY [pulumi flags]}
shift
case "$action" in
  up | preview | destroy) "$here/preflight.sh" ;;
esac
# shellcheck source=scripts/stack-env.sh
source "$here/stack-env.sh"
prepare_stack
case "$action" in
  up) pulumi_cfg up --yes "$@" ;;
  preview) pulumi_cfg preview "$@" ;;
  destroy) pulumi_cfg destroy --yes "$@" ;;
  outputs) pulumi_stack stack output "$@" ;;
  config) pulumi_cfg config "$@" ;;
  secret)
    key=${1:?usage: scripts/stack.sh secret KEY (for example notes:dbPassword); the value comes from stdin}
    shift
    if [ -t 0 ]; then
      read -rsp "value of $key (not echoed): " value && echo >&2
      printf '%s' "$value" | pulumi_stack config set --secret "$key" --config-file "$secrets_file" "$@"
    else
      pulumi_stack config set --secret "$key" --config-file "$secrets_file" "$@"
    fi
    merge_config
    ;;
  *) echo "unknown action $action: want up, preview, destroy, outputs, config or secret" >&2; exit 2 ;;
esac
