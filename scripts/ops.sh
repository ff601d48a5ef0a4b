#!/usr/bin/env bash
# scripts/ops.sh ACTION [ARGS]: everyday operations on the deployed stack $STACK (default dev).
#   status              containers (state, health, image id), app version, URL check, last backup age
#   logs [ROLE]         follow the logs of app (all replicas), db, nginx, backup, certbot or migrate;
#                       JSON lines printed as "time level msg key=value ..."
#   rollback            pulumi up with the previous notes:appVersion of the stack history
#                       (or $VERSION)
#   backup              a dump now (prints its path)
#   restore FILE        restore a dump (asks unless YES=1), then run the migration job again
#                       (pulumi up --replace of this deploy's migration command)
#   psql                psql as the database owner over the container's local socket (no password)
#   exec CMD...         CMD in replica $REPLICA (default 1); the image has no shell: give the binary
# Container names and the Docker host come from the stack outputs, so the commands work for local
# and ssh:// hosts alike (ssh with the stack's notes:sshOpts).
set -euo pipefail
here=$(dirname "$0")
action=${1:?usage: scripts/ops.sh status|logs|rollback|backup|restore FILE|psql|exec CMD...}
shift
# shellcheck source=scripts/stack-env.sh
source "$here/stack-env.sh"
# shellcheck source=scripts/docker-host.sh
source "$here/docker-host.sh"

die() { echo "$action: $*" >&2; exit 1; }
command -v jq >/dev/null || die "needs jq (make setup installs it; or apt-get install jq)"
pulumi_stack stack select >/dev/null 2>&1 || die "stack $stack does not exist here: make up STACK=$stack"
outputs=$(pulumi_stack stack output --json) || die "cannot read the outputs of stack $stack"
out() { jq -r --arg k "$1" '.[$k] // empty | if type == "array" then .[] else . end' <<<"$outputs"; }
# need KEY [WHY] sets vals (the output's values, one per list element) and val (the first) or stops.
need() {
  mapfile -t vals < <(out "$1")
  ((${#vals[@]})) || die "stack $stack has no output $1${2:+ ($2)}: is it deployed (make up STACK=$stack)?"
  val=${vals[0]}
}
need dockerHost
docker_host_init "$val" "$committed"
if [ "$(out engine)" = swarm ] && [ "$action" != rollback ]; then
  die "not written for notes:engine swarm yet; use docker service ls / ps / logs on the manager (services notes-$stack-*), backupNowCommand and restoreCommand from make outputs"
fi
# An interactive terminal only when there is one (psql and exec also read a script from stdin).
tty=()
if [ -t 0 ] && [ -t 1 ]; then tty=(-t); fi

# log_format turns the JSON log lines of the service and nginx into one readable line each and
# passes anything else through.
log_format() {
  jq --unbuffered -R -r '. as $line | (try fromjson catch null) as $j
    | if ($j | type) == "object" then
        [($j.time // $j.time_iso8601 // ""), ($j.level // ""), ($j.msg // "")]
        + ($j | del(.time, .time_iso8601, .level, .msg) | to_entries | map("\(.key)=\(.value | tostring)"))
        | map(select(. != "")) | join(" ")
      else $line end'
}

backup_age() {
  local b last stamp
  b=$(out backupContainer)
  [ -n "$b" ] || { echo "backups: off (notes:backups)"; return 0; }
  last=$(on_host docker exec "$b" notes-backup list | head -1) || { echo "backups: cannot list ($b)"; return 0; }
  [ -n "$last" ] || { echo "backups: none yet"; return 0; }
  stamp=$(sed -E 's/^notes-([0-9]{4})([0-9]{2})([0-9]{2})T([0-9]{2})([0-9]{2})([0-9]{2})Z.*/\1-\2-\3 \4:\5:\6 UTC/' <<<"$last")
  echo "last backup: $last ($(( ($(date +%s) - $(date -d "$stamp" +%s)) / 60 )) min ago)"
}

case "$action" in
  status)
    echo "stack $stack on $docker_host, appVersion $(out appVersion), image $(out imageId)"
    mapfile -t names < <(out databaseContainer; out replicaNames; out nginxContainer; out backupContainer; out certbotContainer)
    on_host docker inspect -f '{{.Name}}	{{.State.Status}}	{{if .State.Health}}{{.State.Health.Status}}{{else}}-{{end}}	{{slice .Image 0 19}}	{{index .Config.Labels "org.opencontainers.image.version"}}' "${names[@]}" |
      sed 's|^/||' | { printf 'CONTAINER\tSTATE\tHEALTH\tIMAGE ID\tVERSION\n'; cat; } | column -t -s $'\t'
    health=$(out healthUrl)
    if code=$(curl -ks -o /dev/null -m 5 -w '%{http_code}' "$health"); then echo "$health: $code"; else echo "$health: no answer"; fi
    backup_age
    ;;
  logs)
    role=${1:-app}
    case $role in
      app) need replicaNames ;;
      db) need databaseContainer "notes:databaseUrl points elsewhere" ;;
      nginx) need nginxContainer ;;
      backup) need backupContainer "notes:backups is off" ;;
      certbot) need certbotContainer "only with notes:tls acme" ;;
      migrate) need migrationContainer ;;
      *) die "SERVICE=$role: want app, db, nginx, backup, certbot or migrate" ;;
    esac
    names=("${vals[@]}")
    follow=(-f)
    [ "${FOLLOW:-1}" = 0 ] && follow=()
    for n in "${names[@]}"; do
      on_host docker logs "${follow[@]}" --tail "${TAIL:-100}" "$n" 2>&1 | log_format | sed -u "s|^|$n  |" &
    done
    wait
    ;;
  rollback)
    need appVersion
    current=$val
    # The history records each update's config (secrets stay encrypted), newest first; the
    # previous version is the newest successful update's notes:appVersion that differs.
    previous=${VERSION:-}
    if [ -z "$previous" ]; then
      previous=$(pulumi_stack stack history --json | jq -r --arg cur "$current" '
        [.[] | select(.kind == "update" and .result == "succeeded") | .config["notes:appVersion"].value // empty]
        | map(select(. != $cur)) | first // empty')
    fi
    [ -n "$previous" ] || die "no earlier appVersion than $current in the history of stack $stack (VERSION= names one)"
    echo "rollback: stack $stack from appVersion $current to $previous" >&2
    "$here/preflight.sh"
    merge_config
    pulumi_cfg up --yes --config "notes:appVersion=$previous" "$@"
    echo "rollback: $stack serves $previous until the next make up deploys Pulumi.$stack.yaml's notes:appVersion again; set it there to keep it" >&2
    ;;
  backup)
    need backupContainer "notes:backups is off"
    on_host docker exec "$val" notes-backup now
    ;;
  restore)
    file=${1:?usage: make restore FILE=notes-YYYYMMDDTHHMMSSZ.dump (make status lists the last one; notes-backup list all)}
    need backupContainer "notes:backups is off"
    backup=$val
    # The migration command of this deploy (a throwaway container that is gone once it exited):
    # replaced alone, it runs again with the secrets Pulumi keeps.
    urn=$(pulumi_stack stack export | jq -r '[.deployment.resources[] | select(.type == "command:local:Command" and (.urn | endswith("-app-migrate"))) | .urn] | first // empty')
    [ -n "$urn" ] || die "stack $stack has no migration command: is it deployed (make up STACK=$stack)?"
    if [ "${YES:-}" != 1 ]; then
      [ -t 0 ] || die "restoring replaces the database of stack $stack: run with YES=1 to confirm without a terminal"
      read -rp "Replace the database of stack $stack with $file? Type the stack name to confirm: " answer
      [ "$answer" = "$stack" ] || die "not confirmed; nothing changed"
    fi
    on_host docker exec "$backup" notes-backup restore "$file"
    # The dump may predate migrations the running image expects: run this deploy's job again.
    merge_config
    pulumi_cfg up --yes --skip-preview --suppress-progress --target "$urn" --replace "$urn"
    ;;
  psql)
    need databaseContainer "notes:databaseUrl points at an external database: use its own client"
    # The postgres image's own variables name the owner role and database; psql runs inside the
    # container over the local socket, so no password is needed or shown.
    # shellcheck disable=SC2016 # expanded by the shell inside the container
    on_host "${tty[@]}" docker exec -i "${tty[@]}" "$val" sh -c 'exec psql -X -U "$POSTGRES_USER" -d "$POSTGRES_DB"'
    ;;
  exec)
    [ $# -gt 0 ] || die "usage: make exec CMD='/notes migrate status' [REPLICA=N]"
    need replicaNames
    n=${REPLICA:-1}
    if ! [[ $n =~ ^[0-9]+$ ]] || [ "$n" -lt 1 ] || [ "$n" -gt "${#vals[@]}" ]; then
      die "REPLICA=$n: want 1..${#vals[@]}"
    fi
    on_host "${tty[@]}" docker exec -i "${tty[@]}" "${vals[n - 1]}" "$@"
    ;;
  *) die "unknown action: want status, logs, rollback, backup, restore, psql or exec" ;;
esac
