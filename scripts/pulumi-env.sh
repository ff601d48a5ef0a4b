# Sourced by the other scripts: puts a Pulumi CLI on PATH and points it at a local file backend
# unless the caller chose another backend. On the team's offline machines the CLI and its plugins
# come from ../shared/tools; everywhere else from the normal Pulumi install.
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ -x "$root/../shared/tools/install-pulumi.sh" ]; then
  eval "$("$root/../shared/tools/install-pulumi.sh")"
fi
command -v pulumi >/dev/null || { echo "pulumi is not installed: see https://www.pulumi.com/docs/install/" >&2; exit 1; }
export PULUMI_SKIP_UPDATE_CHECK=true
