#!/bin/sh
# notes-backup: pg_dump backups of the notes database, run inside the backup container
# (postgres image; DATABASE_URL is the owner's connection string, dumps live in $BACKUP_DIR).
#
#   notes-backup loop            # the container's command: a dump every $BACKUP_INTERVAL seconds
#   notes-backup now             # one dump now; prints its path
#   notes-backup list            # dumps, newest first
#   notes-backup restore FILE    # restore FILE (a name from `list` or a path) into the database
#
# Operators run it with `docker exec notes-<stack>-backup notes-backup now` (see docs/infra.md).
set -eu
dir=${BACKUP_DIR:-/backups}
keep=${BACKUP_RETENTION:-7}
interval=${BACKUP_INTERVAL:-86400}
: "${DATABASE_URL:?DATABASE_URL is not set}"

log() { echo "notes-backup: $*" >&2; }

prune() {
  # Keep the $keep newest dumps (names sort by time).
  ls -1 "$dir" | grep -E '^notes-[0-9TZ-]+\.dump$' | sort -r | tail -n +"$((keep + 1))" | while read -r old; do
    rm -f "$dir/$old" && log "pruned $old"
  done
}

now() {
  mkdir -p "$dir"
  f="$dir/notes-$(date -u +%Y%m%dT%H%M%SZ).dump"
  [ -e "$f" ] && f="$dir/notes-$(date -u +%Y%m%dT%H%M%SZ)-$$.dump"
  rm -f "$dir"/*.partial
  pg_dump --format=custom --compress=6 --dbname="$DATABASE_URL" --file="$f.partial"
  mv "$f.partial" "$f"
  log "wrote $f ($(wc -c <"$f") bytes)"
  prune
  echo "$f"
}

list() { ls -1 "$dir" | grep -E '^notes-[0-9TZ-]+\.dump$' | sort -r; }

restore() {
  f=${1:?usage: notes-backup restore FILE}
  case $f in /*) ;; *) f="$dir/$f" ;; esac
  [ -f "$f" ] || { log "no such dump: $f"; exit 1; }
  pg_restore --list "$f" >/dev/null
  # One transaction: either the whole dump is restored or nothing changes.
  pg_restore --clean --if-exists --no-owner --single-transaction --exit-on-error --dbname="$DATABASE_URL" "$f"
  log "restored $f"
}

loop() {
  trap 'exit 0' TERM INT
  log "every ${interval}s into $dir, keeping $keep"
  while :; do
    sleep "$interval" &
    wait $!
    now >/dev/null || log "backup failed; next try in ${interval}s"
  done
}

case ${1:-} in
  loop) loop ;;
  now) now ;;
  list) list ;;
  restore) shift; restore "$@" ;;
  *) echo "usage: notes-backup loop|now|list|restore FILE" >&2; exit 2 ;;
esac
