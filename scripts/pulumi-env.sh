# shellcheck shell=bash
# Sourced by the other scripts: puts a Pulumi CLI on PATH. On the team's offline machines the CLI
# and its plugins come from the shared folder (tools/install-pulumi.sh); everywhere else from the
# normal Pulumi install. Sets $root (the repository) and $shared (the shared folder, may not exist).
#
# The shared folder is $NOTES_SHARED_DIR when set, else ../shared next to the repository (where the
# team's checkouts live). A clone elsewhere sets NOTES_SHARED_DIR=/path/to/shared.
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
shared=${NOTES_SHARED_DIR:-$root/../shared}
if [ -n "${NOTES_SHARED_DIR:-}" ] && [ ! -d "$NOTES_SHARED_DIR" ]; then
  echo "NOTES_SHARED_DIR=$NOTES_SHARED_DIR is not a directory (unset it to use $root/../shared)" >&2
  return 1
fi
if [ -x "$shared/tools/install-pulumi.sh" ]; then
  eval "$("$shared/tools/install-pulumi.sh")"
fi
if ! command -v pulumi >/dev/null; then
  echo "pulumi is not installed: see https://www.pulumi.com/docs/install/ (offline team machines: set NOTES_SHARED_DIR to the folder with tools/install-pulumi.sh; looked in $shared)" >&2
  return 1
fi
export PULUMI_SKIP_UPDATE_CHECK=true
