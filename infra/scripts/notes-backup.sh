#!/bin/sh
# notes-backup: pg_dump backups of the notes database, run inside the backup container
# (postgres image; dumps live in $BACKUP_DIR). The connection comes from libpq's environment
# (PGHOST, PGPORT, PGUSER, PGDATABASE, PGSSLMODE, ..., the password in PGPASSFILE), never from the command line:
# the arguments of pg_dump/pg_restore are visible to every user of the host in `ps`.
#
#   notes-backup loop            # the container's command: a dump every $BACKUP_INTERVAL seconds
#   notes-backup now             # one dump now; prints its path (last line of stdout)
#   notes-backup list            # dumps, newest first
#   notes-backup restore FILE    # restore FILE (a name from `list` or a path) into the database
#
# Operators run it with `docker exec notes-<stack>-backup notes-backup now` (see docs/infra.md).
#
# Every step that can fail is checked explicitly (`|| return 1`): `set -e` is off inside a function
# called from an `||`, `&&`, `if` or `!` context (POSIX), so it must not be relied on.
set -eu
dir=${BACKUP_DIR:-/backups}
keep=${BACKUP_RETENTION:-7}
interval=${BACKUP_INTERVAL:-86400}

log() { echo "notes-backup: $*" >&2; }
die() { log "$*"; exit 1; }

case $keep in '' | *[!0-9]* | 0) die "BACKUP_RETENTION must be a whole number >= 1, got '$keep'" ;; esac
case $interval in '' | *[!0-9]*) die "BACKUP_INTERVAL must be a number of seconds, got '$interval'" ;; esac
[ "$interval" -ge 60 ] || die "BACKUP_INTERVAL must be at least 60 seconds, got $interval"

need_db() { [ -n "${PGDATABASE:-}" ] || die "PGDATABASE is not set (and PGHOST, PGUSER, PGPASSFILE, ...)"; }

list() {
  [ -d "$dir" ] || return 0
  for f in "$dir"/notes-*.dump; do
    [ -f "$f" ] && printf '%s\n' "${f##*/}"
  done | grep -E '^notes-[0-9TZ-]+\.dump$' | sort -r
}

prune() {
  # Keep the $keep newest dumps (names sort by time). Only ever runs after a verified dump.
  names=$(list) || return 1
  old=$(printf '%s\n' "$names" | sed -n "$((keep + 1)),\$p") || return 1
  for o in $old; do
    rm -f "$dir/$o" || return 1
    log "pruned $o"
  done
}

# Partial files of dumps that died (container killed mid-dump) are removed once they are a day old;
# a younger one may belong to a dump still running (an operator's `now` next to the loop).
clean_stale() {
  find "$dir" -maxdepth 1 -type f -name 'notes-*.partial' -mmin +1440 -exec rm -f {} + 2>/dev/null || true
}

now() {
  need_db
  mkdir -p "$dir" || return 1
  clean_stale
  stamp=$(date -u +%Y%m%dT%H%M%SZ) || return 1
  f="$dir/notes-$stamp.dump"
  if [ -e "$f" ]; then f="$dir/notes-$stamp-$$.dump"; fi
  part="$f.$$.partial"
  pg_dump --format=custom --compress=6 --no-password --file="$part" || {
    rm -f "$part"
    log "pg_dump failed; no dump written"
    return 1
  }
  # A dump pg_restore cannot read is no backup.
  pg_restore --list "$part" >/dev/null || {
    rm -f "$part"
    log "pg_dump wrote an unreadable dump; removed"
    return 1
  }
  mv "$part" "$f" || { rm -f "$part"; return 1; }
  size=$(wc -c <"$f") || size='?'
  log "wrote $f ($size bytes)"
  prune || { log "pruning old dumps failed"; echo "$f"; return 1; }
  echo "$f"
}

restore() {
  need_db
  f=${1:?usage: notes-backup restore FILE}
  case $f in /*) ;; *) f="$dir/$f" ;; esac
  [ -f "$f" ] || die "no such dump: $f"
  pg_restore --list "$f" >/dev/null || die "not a readable dump: $f"
  # One transaction: either the whole dump is restored or nothing changes. --dbname is only the
  # database name (without it pg_restore prints SQL); the rest of the connection, the password
  # included, comes from the environment.
  pg_restore --no-password --clean --if-exists --no-owner --single-transaction --exit-on-error \
    --dbname="$PGDATABASE" "$f" || die "restore of $f failed; the database is unchanged"
  log "restored $f"
}

# due: no dump younger than the interval exists.
due() {
  [ -z "$(find "$dir" -maxdepth 1 -type f -name 'notes-*.dump' -mmin "-$((interval / 60))" 2>/dev/null | head -n 1)" ]
}

loop() {
  need_db
  trap 'exit 0' TERM INT
  log "every ${interval}s into $dir, keeping $keep"
  mkdir -p "$dir" || die "cannot create $dir"
  # A new or restarted container whose newest dump is older than the interval dumps right away.
  if due; then
    if now >/dev/null; then :; else log "backup failed; next try in ${interval}s"; fi
  fi
  while :; do
    sleep "$interval" &
    wait $!
    if now >/dev/null; then :; else log "backup failed; next try in ${interval}s"; fi
  done
}

case ${1:-} in
  loop) loop ;;
  now) now ;;
  list) list ;;
  restore) shift; restore "$@" ;;
  *) echo "usage: notes-backup loop|now|list|restore FILE" >&2; exit 2 ;;
esac
