#!/usr/bin/env bash
# scripts/ops.sh ACTION [ARGS]: everyday operations on the deployed stack $STACK (default dev).
#   status              containers (state, health, image id), app version, URL check, last backup age;
#                       on engine swarm the services (running/desired tasks) and each task
#   logs [ROLE]         follow the logs of app (all replicas), db, nginx, backup, certbot or migrate;
#                       JSON lines printed as "time level msg key=value ..."; migrate prints the
#                       last run's output from the Pulumi state (its container is gone once it exited)
#   rollback            pulumi up with the previous notes:appVersion of the stack history
#                       (or $VERSION)
#   backup              a dump now (prints its path)
#   restore FILE        restore a dump (asks unless YES=1), then run the migration job again
#                       (pulumi up --replace of this deploy's migration command)
#   psql                psql as the database owner over the container's local socket (no password)
#   exec CMD...         CMD in replica $REPLICA (default 1; on engine swarm the app task in that
#                       slot); the image has no shell: give the binary
# Container and service names and the Docker host come from the stack outputs, so the commands
# work for local and ssh:// hosts alike (ssh with the stack's notes:sshOpts). On engine swarm the
# host is the manager: docker exec reaches the tasks running on it, and a command that needs a
# task on another node stops and names that node.
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
# The merged config file serves the TLS secrets here and the pulumi commands below.
merge_config
docker_tls_init config_value || die "cannot read notes:dockerTlsCa, dockerTlsCert and dockerTlsKey of stack $stack"
engine=$(out engine)
engine=${engine:-containers}
# An interactive terminal only when there is one (psql and exec also read a script from stdin).
tty=()
if [ -t 0 ] && [ -t 1 ]; then tty=(-t); fi

# The output that names each role's container (engine containers) or service (engine swarm).
declare -A key
if [ "$engine" = swarm ]; then
  key=([app]=appService [db]=databaseService [nginx]=nginxService [backup]=backupService [certbot]=certbotService)
else
  key=([app]=replicaNames [db]=databaseContainer [nginx]=nginxContainer [backup]=backupContainer [certbot]=certbotContainer)
fi

# swarm_task SERVICE [SLOT] sets container: the container of the service's running task (the one
# in SLOT) on the daemon this stack reaches, the manager. A task on another node is out of reach
# of docker exec here: stop and name the node rather than run the command somewhere else.
swarm_task() {
  local service=$1 slot=${2:-} tasks id name node state pick=""
  tasks=$(on_host docker service ps --no-trunc --filter desired-state=running \
    --format '{{.ID}}	{{.Name}}	{{.Node}}	{{.CurrentState}}' "$service") || die "cannot list the tasks of service $service on $docker_host"
  while IFS=$'\t' read -r id name node state; do
    [ -n "$id" ] || continue
    [ -z "$slot" ] || [ "${name##*.}" = "$slot" ] || continue
    # Mid-update a slot has a starting task next to the running one: take the running one.
    if [ -z "$pick" ] || [[ $state == Running* ]]; then pick=$id$'\t'$node$'\t'$state; fi
  done <<<"$tasks"
  [ -n "$pick" ] || die "service $service has no running task${slot:+ in slot $slot}: docker service ps --no-trunc $service says why"
  IFS=$'\t' read -r id node state <<<"$pick"
  [[ $state == Running* ]] || die "the task of $service${slot:+ in slot $slot} is not running ($state): docker service ps --no-trunc $service says why"
  container=$(on_host docker ps -q --filter "label=com.docker.swarm.task.id=$id") || die "cannot list the containers on $docker_host"
  [ -n "$container" ] || die "the task of $service${slot:+ in slot $slot} runs on node $node, not on the manager at $docker_host: run docker exec against that node's daemon (its container: docker ps --filter label=com.docker.swarm.task.id=$id)"
}

# container_of ROLE [WHY] [N] sets container: where docker exec runs for role db, backup or app
# (replica N, default 1); WHY explains a missing output.
container_of() {
  need "${key[$1]}" "${2:-}"
  if [ "$engine" = swarm ]; then
    swarm_task "$val" "${3:-}"
  else
    container=${vals[${3:-1} - 1]}
  fi
}

# log_format turns the JSON log lines of the service and nginx into one readable line each and
# passes anything else through. With "service" it keeps the "task@node   | " prefix of docker
# service logs in front of each line.
log_format() {
  jq --unbuffered -R -r --arg mode "${1:-}" '
    (if $mode == "service" then (capture("^(?<p>[^ |]+) *\\| ?(?<m>.*)$") // {p: null, m: .}) else {p: null, m: .} end) as $c
    | $c.m as $line | (try ($line | fromjson) catch null) as $j
    | (if ($j | type) == "object" then
        [($j.time // $j.time_iso8601 // ""), ($j.level // ""), ($j.msg // "")]
        + ($j | del(.time, .time_iso8601, .level, .msg) | to_entries | map("\(.key)=\(.value | tostring)"))
        | map(select(. != "")) | join(" ")
      else $line end) as $text
    | if $c.p then "\($c.p)  \($text)" else $text end'
}

# migration_log prints the last completed migration's output as the Pulumi state keeps it: the
# migration container (scripts/migrate.sh, on both engines) is removed once it exited, so there is
# no container to ask. The command's stdout and stderr are secrets in the state (its stdin, the
# database secrets, is one), hence --show-secrets; jq passes on these two fields only.
migration_log() {
  local mig
  need migrationContainer
  mig=$val
  pulumi_stack stack export --show-secrets |
    jq -r '[.deployment.resources[] | select(.type == "command:local:Command" and (.urn | endswith("-app-migrate")))]
      | first // error("stack has no migration command: is it deployed?")
      | .outputs | (.stdout, .stderr)
      | if type == "object" then (.plaintext // "\"\"" | fromjson) else . end // "" | select(. != "")' |
    log_format | sed "s|^|$mig  |"
}

backup_age() {
  local b last stamp
  [ -n "$(out "${key[backup]}")" ] || { echo "backups: off (notes:backups)"; return 0; }
  b=$(container_of backup && printf '%s' "$container") || { echo "backups: cannot reach the backup container"; return 0; }
  last=$(on_host docker exec "$b" notes-backup list | head -1) || { echo "backups: cannot list ($b)"; return 0; }
  [ -n "$last" ] || { echo "backups: none yet"; return 0; }
  stamp=$(sed -E 's/^notes-([0-9]{4})([0-9]{2})([0-9]{2})T([0-9]{2})([0-9]{2})([0-9]{2})Z.*/\1-\2-\3 \4:\5:\6 UTC/' <<<"$last")
  echo "last backup: $last ($(( ($(date +%s) - $(date -d "$stamp" +%s)) / 60 )) min ago)"
}

# health_check: the health URL's status, with the certificate verified (never --insecure); one
# that does not verify here (the tls=acme placeholder, a private CA) is named as such.
health_check() {
  local health code rc=0
  health=$(out healthUrl)
  code=$(curl -s -o /dev/null -m 5 -w '%{http_code}' "$health") || rc=$?
  case $rc in
    0) echo "$health: $code" ;;
    60) echo "$health: its certificate does not verify against this machine's trust store (the tls=acme placeholder before certbot's first certificate, or a private CA)" ;;
    *) echo "$health: no answer" ;;
  esac
}

# swarm_status: the stack's services (running/desired tasks), then each running task with its
# state and node, and the health, image and version of the ones on this daemon (the manager).
swarm_status() {
  local services tasks cids info rows id name node state health image version remote=0
  local -a names
  local -A c_health c_image c_version
  services=$(on_host docker service ls --filter "label=com.notes-stack.stack=$stack" \
    --format '{{.Name}}	{{.Replicas}}	{{.Image}}') || die "cannot list the services on $docker_host"
  [ -n "$services" ] || die "no service of stack $stack on $docker_host: is it deployed (make up STACK=$stack)?"
  { printf 'SERVICE\tTASKS\tIMAGE\n%s\n' "$services"; } | column -t -s $'\t'
  mapfile -t names < <(cut -f1 <<<"$services")
  tasks=$(on_host docker service ps --no-trunc --filter desired-state=running \
    --format '{{.ID}}	{{.Name}}	{{.Node}}	{{.CurrentState}}' "${names[@]}") || die "cannot list the tasks on $docker_host"
  cids=$(on_host docker ps -q --filter "label=com.notes-stack.stack=$stack" --filter label=com.docker.swarm.task.id) || die "cannot list the containers on $docker_host"
  if [ -n "$cids" ]; then
    # shellcheck disable=SC2086 # one container id per word
    info=$(on_host docker inspect -f '{{index .Config.Labels "com.docker.swarm.task.id"}}	{{if .State.Health}}{{.State.Health.Status}}{{else}}-{{end}}	{{slice .Image 0 19}}	{{index .Config.Labels "org.opencontainers.image.version"}}' $cids) ||
      die "cannot inspect the task containers on $docker_host"
    while IFS=$'\t' read -r id health image version; do
      c_health[$id]=$health c_image[$id]=$image c_version[$id]=$version
    done <<<"$info"
  fi
  rows=$'TASK\tSTATE\tHEALTH\tNODE\tIMAGE ID\tVERSION\n'
  while IFS=$'\t' read -r id name node state; do
    [ -n "$id" ] || continue
    if [ -z "${c_health[$id]:-}" ]; then remote=1; fi
    rows+=$(printf '%s\t%s\t%s\t%s\t%s\t%s' "$name" "$state" "${c_health[$id]:--}" "$node" "${c_image[$id]:--}" "${c_version[$id]:-}")$'\n'
  done <<<"$tasks"
  echo
  printf '%s' "$rows" | column -t -s $'\t'
  if ((remote)); then echo "(health and image are shown for the tasks on the manager; docker inspect the others on their node)"; fi
}

case "$action" in
  status)
    if [ "$engine" = swarm ]; then
      echo "stack $stack on $docker_host (engine swarm), appVersion $(out appVersion), image $(out imageId)"
      swarm_status
    else
      echo "stack $stack on $docker_host, appVersion $(out appVersion), image $(out imageId)"
      mapfile -t names < <(out databaseContainer; out replicaNames; out nginxContainer; out backupContainer; out certbotContainer)
      on_host docker inspect -f '{{.Name}}	{{.State.Status}}	{{if .State.Health}}{{.State.Health.Status}}{{else}}-{{end}}	{{slice .Image 0 19}}	{{index .Config.Labels "org.opencontainers.image.version"}}' "${names[@]}" |
        sed 's|^/||' | { printf 'CONTAINER\tSTATE\tHEALTH\tIMAGE ID\tVERSION\n'; cat; } | column -t -s $'\t'
    fi
    health_check
    backup_age
    ;;
  logs)
    role=${1:-app}
    case $role in
      app) need "${key[app]}" ;;
      db) need "${key[db]}" "notes:databaseUrl points elsewhere" ;;
      nginx) need "${key[nginx]}" ;;
      backup) need "${key[backup]}" "notes:backups is off" ;;
      certbot) need "${key[certbot]}" "only with notes:tls acme" ;;
      migrate) migration_log; exit 0 ;;
      *) die "SERVICE=$role: want app, db, nginx, backup, certbot or migrate" ;;
    esac
    follow=(-f)
    [ "${FOLLOW:-1}" = 0 ] && follow=()
    if [ "$engine" = swarm ]; then
      # The manager gathers the logs of every task of the service, on whichever node it runs.
      on_host docker service logs --no-task-ids "${follow[@]}" --tail "${TAIL:-100}" "$val" 2>&1 | log_format service
    else
      names=("${vals[@]}")
      for n in "${names[@]}"; do
        on_host docker logs "${follow[@]}" --tail "${TAIL:-100}" "$n" 2>&1 | log_format | sed -u "s|^|$n  |" &
      done
      wait
    fi
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
    pulumi_cfg up --yes --config "notes:appVersion=$previous" "$@"
    echo "rollback: $stack serves $previous until the next make up deploys Pulumi.$stack.yaml's notes:appVersion again; set it there to keep it" >&2
    ;;
  backup)
    container_of backup "notes:backups is off"
    on_host docker exec "$container" notes-backup now
    ;;
  restore)
    file=${1:?usage: make restore FILE=notes-YYYYMMDDTHHMMSSZ.dump (make status lists the last one; notes-backup list all)}
    container_of backup "notes:backups is off"
    backup=$container
    # The migration command of this deploy (a throwaway container that is gone once it exited):
    # replaced alone, it runs again with the secrets Pulumi keeps.
    urn=$(pulumi_stack stack export | jq -r '[.deployment.resources[] | select(.type == "command:local:Command" and (.urn | endswith("-app-migrate"))) | .urn] | first // empty')
    [ -n "$urn" ] || die "stack $stack has no migration command: is it deployed (make up STACK=$stack)?"
    if [ "${YES:-}" != 1 ]; then
      [ -t 0 ] || die "restoring replaces the database of stack $stack: run with YES=1 to confirm without a terminal"
      read -rp "Replace the database of stack $stack with $file? Type the stack name to confirm: " answer
      [ "$answer" = "$stack" ] || die "not confirmed; nothing changed"
    fi
    # notes-backup checks the file and restores in one transaction: on any error nothing changed.
    on_host docker exec "$backup" notes-backup restore "$file" || die "restore of $file failed (see above): the database is unchanged; the migration did not run"
    # The dump may predate migrations the running image expects: run this deploy's job again.
    pulumi_cfg up --yes --skip-preview --suppress-progress --target "$urn" --replace "$urn"
    ;;
  psql)
    container_of db "notes:databaseUrl points at an external database: use its own client"
    # The postgres image's own variables name the owner role and database; psql runs inside the
    # container over the local socket, so no password is needed or shown.
    # shellcheck disable=SC2016 # expanded by the shell inside the container
    on_host "${tty[@]}" docker exec -i "${tty[@]}" "$container" sh -c 'exec psql -X -U "$POSTGRES_USER" -d "$POSTGRES_DB"'
    ;;
  exec)
    [ $# -gt 0 ] || die "usage: make exec CMD='/notes migrate status' [REPLICA=N]"
    need "${key[app]}"
    if [ "$engine" = swarm ]; then
      replicas=$(on_host docker service inspect -f '{{.Spec.Mode.Replicated.Replicas}}' "$val") || die "cannot inspect service $val on $docker_host"
    else
      replicas=${#vals[@]}
    fi
    n=${REPLICA:-1}
    if ! [[ $n =~ ^[0-9]+$ ]] || [ "$n" -lt 1 ] || [ "$n" -gt "$replicas" ]; then
      die "REPLICA=$n: want 1..$replicas"
    fi
    container_of app "" "$n"
    on_host "${tty[@]}" docker exec -i "${tty[@]}" "$container" "$@"
    ;;
  *) die "unknown action: want status, logs, rollback, backup, restore, psql or exec" ;;
esac
