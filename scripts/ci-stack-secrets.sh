#!/bin/sh
# CI only: put the stack's secrets from the environment into this runner's copy of
# Pulumi.<stack>.yaml, so that pulumi preview/up can load the stack's config. The file is a
# throwaway copy in the job's checkout, never committed (locally, `make secret` keeps secrets
# out of the committed file instead).
#
#   scripts/ci-stack-secrets.sh STACK
#   env: DB_PASSWORD (notes:dbPassword; optional with notes:databaseUrl), APP_DB_PASSWORD
#        (notes:appDbPassword), API_TOKEN (notes:apiToken; optional with notes:writeAuth none),
#        PULUMI_STACK_CRYPTO (optional: the stack's encryptionsalt line, or its secretsprovider
#        and encryptedkey lines, for a stack that does not use the Pulumi Cloud secrets manager)
#
# Values go to pulumi on stdin, never on a command line.
set -eu
stack=${1:?usage: ci-stack-secrets.sh STACK}
file="Pulumi.$stack.yaml"
[ -f "$file" ] || { echo "ci-stack-secrets: no $file" >&2; exit 1; }
if [ -n "${PULUMI_STACK_CRYPTO:-}" ]; then
  printf '%s\n' "$PULUMI_STACK_CRYPTO" >>"$file"
fi
set_secret() { # KEY VALUE
  printf '%s' "$2" | pulumi --non-interactive config set --secret --stack "$stack" "$1"
}
missing=""
for pair in APP_DB_PASSWORD=notes:appDbPassword DB_PASSWORD=notes:dbPassword API_TOKEN=notes:apiToken; do
  var=${pair%%=*}
  eval "value=\${$var:-}"
  if [ -n "$value" ]; then
    set_secret "${pair#*=}" "$value"
  else
    missing="$missing $var"
  fi
done
if [ -n "$missing" ]; then
  # Not fatal: DB_PASSWORD is not needed with an external database, API_TOKEN not with
  # writeAuth none; the program names any key the stack really lacks.
  echo "ci-stack-secrets: not set:$missing" >&2
fi
