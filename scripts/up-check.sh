#!/usr/bin/env bash
# scripts/up-check.sh: the README's two commands compose in one checkout. `make up` of the dev
# stack, its URLs answer, the e2e suite's Pulumi.dev.yaml-based preview runs next to it, `make
# down`; `git status --porcelain` is unchanged after every step (empty on a clean clone). A dev
# stack that is already deployed is checked and left running (no up, no down).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
make=${MAKE:-make}
clean=$(git status --porcelain)
step() {
  local name=$1
  shift
  local start=$SECONDS
  echo "up-check: $name" >&2
  "$@"
  local now
  now=$(git status --porcelain)
  if [ "$now" != "$clean" ]; then
    echo "up-check: $name changed git status --porcelain:" >&2
    diff <(echo "$clean") <(echo "$now") >&2 || true
    exit 1
  fi
  echo "up-check: $name ok ($((SECONDS - start)) s)" >&2
}
answers() {
  local outputs key url
  outputs=$(scripts/stack.sh outputs --json)
  for key in url healthUrl apiUrl; do
    url=$(jq -r --arg k "$key" '.[$k] // empty' <<<"$outputs")
    [ -n "$url" ] || { echo "up-check: the stack has no output $key" >&2; return 1; }
    curl -fsS -m 10 -o /dev/null "$url" || { echo "up-check: $key $url does not answer" >&2; return 1; }
  done
}

deployed=false
if url=$(scripts/stack.sh outputs healthUrl 2>/dev/null) && [ -n "$url" ]; then deployed=true; fi
if $deployed; then
  echo "up-check: the dev stack is already deployed: checking it, leaving it up" >&2
else
  step "make up" "$make" up
fi
step "the stack answers" answers
step "e2e next to the dev stack" bash -c 'source scripts/pulumi-env.sh && go test -tags e2e -count=1 -run "^TestPreviewDev$" -timeout 20m ./infra/e2e'
$deployed || step "make down" "$make" down
