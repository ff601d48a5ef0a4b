#!/bin/sh
# notes-backup: pg_dump backups of the notes database, run inside the backup container
# (postgres image; dumps live in $BACKUP_DIR). The connection comes from libpq's environment
# (PGHOST, PGPORT, PGUSER, PGDATABASE, PGSSLMODE, ..., the password in PGPASSFILE), never from the command line:
# the arguments of pg_dump/pg_restore are visible to every user of the host in `ps`.
#
#   notes-backup loop            # the container's command: a dump every $BACKUP_INTERVAL seconds,
#                                # retried with backoff after a failure
#   notes-backup now             # one dump now (checked, test-restored); prints its path (last line of stdout)
#   notes-backup verify [FILE]   # restore FILE (default: the newest dump) into a scratch database and
#                                # compare every table's row count with the source at dump time
#   notes-backup health          # exit 0 while the last good dump is younger than 2 x $BACKUP_INTERVAL
#                                # and the next dump fits into $BACKUP_DIR
#   notes-backup list            # dumps, newest first
#   notes-backup restore FILE    # restore FILE (a name from `list` or a path) into the database
#
# Every dump NAME.dump has NAME.counts next to it: the row count of every table, counted in the
# very snapshot pg_dump dumped. With BACKUP_VERIFY=1 (the default) `now` restores each new dump
# into the scratch database $BACKUP_VERIFY_DB (default <database>_restore_test, dropped again
# afterwards), compares the counts and marks the dump NAME.verified; a dump that fails is renamed
# NAME.dump.unverified and counts as a failed backup. "Good" means verified (with BACKUP_VERIFY=0:
# readable by pg_restore).
#
# Operators run it with `docker exec notes-<stack>-backup notes-backup now` (see docs/infra.md).
#
# Every step that can fail is checked explicitly (`|| return 1`): `set -e` is off inside a function
# called from an `||`, `&&`, `if` or `!` context (POSIX), so it must not be relied on.
set -eu
dir=${BACKUP_DIR:-/backups}
keep=${BACKUP_RETENTION:-7}
interval=${BACKUP_INTERVAL:-86400}
retry=${BACKUP_RETRY:-}
verify_on=${BACKUP_VERIFY:-1}
min_free=${BACKUP_MIN_FREE_KB:-65536}
started=${BACKUP_STATE_DIR:-/tmp}/notes-backup.started

log() { echo "notes-backup: $*" >&2; }
die() { log "$*"; exit 1; }

case $keep in '' | *[!0-9]* | 0) die "BACKUP_RETENTION must be a whole number >= 1, got '$keep'" ;; esac
case $interval in '' | *[!0-9]*) die "BACKUP_INTERVAL must be a number of seconds, got '$interval'" ;; esac
[ "$interval" -ge 60 ] || die "BACKUP_INTERVAL must be at least 60 seconds, got $interval"
# The first retry after a failed backup: BACKUP_RETRY seconds, by default a tenth of the interval
# (6 s for the shortest, 1 minute), at most a minute; it doubles up to the interval.
if [ -z "$retry" ]; then
  retry=$((interval / 10))
  if [ "$retry" -gt 60 ]; then retry=60; fi
fi
case $retry in *[!0-9]* | 0) die "BACKUP_RETRY must be a number of seconds >= 1, got '$retry'" ;; esac
case $verify_on in 0 | 1) ;; *) die "BACKUP_VERIFY must be 0 or 1, got '$verify_on'" ;; esac
case $min_free in '' | *[!0-9]*) die "BACKUP_MIN_FREE_KB must be a number of KiB, got '$min_free'" ;; esac

need_db() { [ -n "${PGDATABASE:-}" ] || die "PGDATABASE is not set (and PGHOST, PGUSER, PGPASSFILE, ...)"; }

list() {
  [ -d "$dir" ] || return 0
  for f in "$dir"/notes-*.dump; do
    [ -f "$f" ] && printf '%s\n' "${f##*/}"
  done | grep -E '^notes-[0-9TZ-]+\.dump$' | sort -r
}

# newest_good: the path of the newest good dump, or nothing.
newest_good() {
  for n in $(list); do
    if [ "$verify_on" = 0 ] || [ -f "$dir/${n%.dump}.verified" ]; then
      printf '%s\n' "$dir/$n"
      return 0
    fi
  done
}

prune() {
  # Keep the $keep newest good dumps (names sort by time). Only ever runs after a good dump, so a
  # run of failed ones never pushes out the last good ones.
  names=$(list) || return 1
  n=0
  for o in $names; do
    base=${o%.dump}
    if [ "$verify_on" = 1 ] && [ ! -f "$dir/$base.verified" ]; then continue; fi
    n=$((n + 1))
    [ "$n" -gt "$keep" ] || continue
    rm -f "$dir/$o" "$dir/$base.counts" "$dir/$base.verified" || return 1
    log "pruned $o"
  done
  # Dumps that failed their test restore are kept for a look until the next good one.
  for u in "$dir"/notes-*.dump.unverified; do
    [ -f "$u" ] || continue
    rm -f "$u" "${u%.dump.unverified}.counts" || return 1
    log "removed ${u##*/} (an older good dump exists now)"
  done
}

# Partial files of dumps that died (container killed mid-dump) are removed once they are a day old;
# a younger one may belong to a dump still running (an operator's `now` next to the loop).
clean_stale() {
  find "$dir" -maxdepth 1 -type f -name 'notes-*.partial' -mmin +1440 -exec rm -f {} + 2>/dev/null || true
}

# check_space fails, before anything connects to the database, unless the backup volume has room
# for one more dump: 1.5 x the newest dump plus BACKUP_MIN_FREE_KB. The dumps already there stay.
check_space() {
  avail=$(df -Pk "$dir" | awk 'NR == 2 { print $4 }') || return 1
  case $avail in '' | *[!0-9]*) log "cannot read the free space of $dir"; return 1 ;; esac
  last_kb=0
  last=$(list | head -n 1)
  if [ -n "$last" ]; then last_kb=$(( $(wc -c <"$dir/$last") / 1024 )) || return 1; fi
  need=$((last_kb + last_kb / 2 + min_free))
  if [ "$avail" -lt "$need" ]; then
    log "not enough space: $avail KiB free in $dir, a dump needs about $need KiB (1.5 x the last dump, $last_kb KiB, + BACKUP_MIN_FREE_KB $min_free); no dump written, the database not touched, the existing dumps kept"
    return 1
  fi
}

# count_rows DB: "schema.table|rows" for every table of database DB, sorted. Read from stdin, so
# the same statements run in the dump's snapshot (dump) and in a restored copy (verify).
count_sql() {
  cat <<'SQL'
SELECT format('SELECT %L, count(*) FROM %I.%I', schemaname || '.' || tablename, schemaname, tablename)
  FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1
\gexec
SQL
}

count_rows() {
  count_sql | psql --no-password -X -q -At -v ON_ERROR_STOP=1 --dbname="$1"
}

# wait_line FILE PATTERN PID: wait until FILE has a line matching PATTERN (grep -E), while PID runs.
wait_line() {
  i=0
  until grep -Eq "$2" "$1" 2>/dev/null; do
    kill -0 "$3" 2>/dev/null || return 1
    i=$((i + 1))
    [ "$i" -le 600 ] || return 1 # 60 s
    sleep 0.1
  done
}

# dump_with_counts PART COUNTS: pg_dump into PART and every table's row count into COUNTS, both of
# one snapshot: a psql session holds a repeatable-read transaction open, exports its snapshot and
# counts in it, and pg_dump --snapshot dumps exactly what it counted.
dump_with_counts() {
  fifo=$1.fifo
  out=$1.psql
  rm -f "$fifo" "$out"
  mkfifo -m 600 "$fifo" || return 1
  # A psql that exits early (say, the database is down) must make the writes below fail, not kill
  # this shell with SIGPIPE.
  trap '' PIPE
  psql --no-password -X -q -At -v ON_ERROR_STOP=1 <"$fifo" >"$out" 2>&1 &
  psql_pid=$!
  exec 3>"$fifo"
  ok=1
  printf '%s\n' 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;' "SELECT 'snapshot=' || pg_export_snapshot();" >&3 || ok=0
  if [ "$ok" = 1 ] && wait_line "$out" '^snapshot=' "$psql_pid"; then
    snap=$(sed -n 's/^snapshot=//p' "$out")
    { count_sql && printf '%s\n' '\echo counts-done'; } >&3 || ok=0
    if [ "$ok" = 1 ] && wait_line "$out" '^counts-done$' "$psql_pid"; then
      grep -v -e '^snapshot=' -e '^counts-done$' "$out" | sort >"$2" || ok=0
      if [ "$ok" = 1 ]; then
        pg_dump --format=custom --compress=6 --no-password --snapshot="$snap" --file="$1" || ok=0
      fi
    else
      ok=0
    fi
  else
    ok=0
  fi
  echo 'COMMIT;' >&3 2>/dev/null || true
  exec 3>&-
  wait "$psql_pid" || ok=0
  trap - PIPE
  if [ "$ok" = 0 ] && [ -s "$out" ]; then log "psql: $(tail -n 5 "$out")"; fi
  rm -f "$fifo" "$out"
  [ "$ok" = 1 ]
}

now() {
  need_db
  mkdir -p "$dir" || return 1
  clean_stale
  check_space || return 1
  stamp=$(date -u +%Y%m%dT%H%M%SZ) || return 1
  f="$dir/notes-$stamp.dump"
  if [ -e "$f" ]; then f="$dir/notes-$stamp-$$.dump"; fi
  part="$f.$$.partial"
  counts=${f%.dump}.counts
  dump_with_counts "$part" "$counts" || {
    rm -f "$part" "$counts"
    log "pg_dump failed; no dump written"
    return 1
  }
  # A dump pg_restore cannot read is no backup.
  pg_restore --list "$part" >/dev/null || {
    rm -f "$part" "$counts"
    log "pg_dump wrote an unreadable dump; removed"
    return 1
  }
  mv "$part" "$f" || { rm -f "$part" "$counts"; return 1; }
  size=$(wc -c <"$f") || size='?'
  log "wrote $f ($size bytes)"
  if [ "$verify_on" = 1 ]; then
    verify "$f" || {
      mv "$f" "$f.unverified" || true
      log "the test restore of $f failed: renamed to ${f##*/}.unverified, not counted as a backup"
      return 1
    }
  fi
  prune || { log "pruning old dumps failed"; echo "$f"; return 1; }
  echo "$f"
}

# verify [FILE]: the scheduled test restore (every dump of `now`; any dump by hand).
verify() {
  need_db
  f=${1:-$(list | head -n 1)}
  [ -n "$f" ] || { log "no dump to verify in $dir"; return 1; }
  case $f in /*) ;; *) f="$dir/$f" ;; esac
  counts=${f%.dump}.counts
  [ -f "$f" ] || { log "no such dump: $f"; return 1; }
  [ -f "$counts" ] || { log "no row counts for $f ($counts): cannot verify it"; return 1; }
  scratch=${BACKUP_VERIFY_DB:-${PGDATABASE}_restore_test}
  case $scratch in '' | *[!a-z0-9_]* | [0-9]*) log "BACKUP_VERIFY_DB must be a lower-case SQL identifier, got '$scratch'"; return 1 ;; esac
  [ "$scratch" != "$PGDATABASE" ] || { log "BACKUP_VERIFY_DB must not be the database itself ($PGDATABASE)"; return 1; }
  drop="DROP DATABASE IF EXISTS \"$scratch\" WITH (FORCE)"
  psql --no-password -X -q -v ON_ERROR_STOP=1 -c "$drop" -c "CREATE DATABASE \"$scratch\"" >/dev/null || {
    log "cannot create the scratch database $scratch (the owner needs CREATEDB; BACKUP_VERIFY=0 turns the test restore off)"
    return 1
  }
  ok=1
  restored=$f.restored-counts
  if pg_restore --no-password --no-owner --exit-on-error --dbname="$scratch" "$f" &&
    count_rows "$scratch" | sort >"$restored"; then
    if ! cmp -s "$counts" "$restored"; then
      log "the restored copy of ${f##*/} differs from the source at dump time (table|rows, source then restored):"
      log "$(cat "$counts")"
      log "$(cat "$restored")"
      ok=0
    fi
  else
    log "restoring ${f##*/} into $scratch failed"
    ok=0
  fi
  psql --no-password -X -q -c "$drop" >/dev/null || log "could not drop the scratch database $scratch"
  rm -f "$restored"
  [ "$ok" = 1 ] || return 1
  touch "${f%.dump}.verified" || return 1
  log "verified ${f##*/}: restored into $scratch, $(wc -l <"$counts") tables, $(awk -F'|' '{ n += $2 } END { print n + 0 }' "$counts") rows, as in the source at dump time"
}

# health: the container's healthcheck. Unhealthy once the newest good dump is older than two
# intervals (or, without any, two intervals after the loop started), and while the next dump
# would not fit into the backup volume: that backup will fail, and no retry fixes it.
health() {
  if [ -d "$dir" ] && ! full=$(check_space 2>&1); then
    echo "${full#notes-backup: }"
    return 1
  fi
  limit=$((2 * interval))
  nowsec=$(date +%s)
  f=$(newest_good)
  if [ -z "$f" ]; then
    if [ -f "$started" ] && [ $((nowsec - $(stat -c %Y "$started"))) -le "$limit" ]; then
      echo "no good dump yet (started $((nowsec - $(stat -c %Y "$started")))s ago)"
      return 0
    fi
    echo "no good dump in $dir for more than 2 x BACKUP_INTERVAL (${limit}s)"
    return 1
  fi
  age=$((nowsec - $(stat -c %Y "$f")))
  if [ "$age" -gt "$limit" ]; then
    echo "the last good dump ${f##*/} is ${age}s old, more than 2 x BACKUP_INTERVAL (${limit}s)"
    return 1
  fi
  echo "the last good dump ${f##*/} is ${age}s old"
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

# due: no good dump younger than the interval exists.
due() {
  f=$(newest_good)
  [ -z "$f" ] || [ $(($(date +%s) - $(stat -c %Y "$f"))) -ge "$interval" ]
}

loop() {
  need_db
  # The sleep is a child of its own: stop it too, or it outlives the loop holding its output.
  sleep_pid=
  trap 'if [ -n "$sleep_pid" ]; then kill "$sleep_pid" 2>/dev/null || true; fi; exit 0' TERM INT
  log "every ${interval}s into $dir, keeping $keep; after a failure again in ${retry}s, doubling up to ${interval}s"
  mkdir -p "$dir" || die "cannot create $dir"
  touch "$started" || die "cannot write $started"
  # A new or restarted container whose newest good dump is older than the interval dumps right away.
  delay=$interval
  if due; then delay=0; fi
  backoff=$retry
  while :; do
    if [ "$delay" -gt 0 ]; then
      sleep "$delay" &
      sleep_pid=$!
      wait "$sleep_pid" || true
      sleep_pid=
    fi
    if now >/dev/null; then
      delay=$interval
      backoff=$retry
    else
      delay=$backoff
      log "backup failed; next try in ${delay}s"
      backoff=$((backoff * 2))
      if [ "$backoff" -gt "$interval" ]; then backoff=$interval; fi
    fi
  done
}

case ${1:-} in
  loop) loop ;;
  now) now ;;
  verify) shift; verify "$@" ;;
  health) health ;;
  list) list ;;
  restore) shift; restore "$@" ;;
  *) echo "usage: notes-backup loop|now|verify [FILE]|health|list|restore FILE" >&2; exit 2 ;;
esac
