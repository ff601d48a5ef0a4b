#!/bin/sh
# phase smoke, first half of the proof that the new version serves (nothing is retired before
# it passes): refuses unless the migration of this revision exited 0 and every new replica is
# `healthy` in docker inspect and carries REVISION. Run on the Docker host. The second half
# (scripts/smoke.sh) then asks nginx for REVISION.
#
#   prove.sh REVISION MIGRATION_STATUS ATTEMPTS REPLICA...
set -u
rev=$1
mig=$2
attempts=$3
shift 3
fail() {
  echo "phase smoke: FAILED: $*" >&2
  exit 1
}
[ "$mig" = 0 ] || fail "the migration of revision $rev did not exit 0 (status: ${mig:-none})"
[ "$#" -gt 0 ] || fail "no replica of revision $rev"
for r in "$@"; do
  got=$(docker inspect -f '{{index .Config.Labels "com.notes-stack.revision"}}' "$r") || fail "replica $r does not exist"
  [ "$got" = "$rev" ] || fail "replica $r is of revision ${got:-none}, want $rev"
  i=0
  while :; do
    i=$((i + 1))
    status=$(docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' "$r")
    case $status in
      healthy) break ;;
      starting) ;;
      *)
        docker inspect -f '{{range .State.Health.Log}}{{.Output}}{{end}}' "$r" 2>/dev/null | tail -n 5 >&2
        fail "replica $r is $status, not healthy"
        ;;
    esac
    [ "$i" -lt "$attempts" ] || fail "replica $r is still $status after $attempts checks"
    sleep 2
  done
  echo "phase smoke: $r (revision $rev) is healthy"
done
echo "phase smoke: migration exited 0, $# replica(s) of revision $rev healthy"
