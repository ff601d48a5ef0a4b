#!/bin/sh
# tls=acme: the certbot container's entrypoint. Runs `certbot ARGS...` (certonly --webroot ...,
# given by the Pulumi program as arguments) now and then every hour; with --keep-until-expiring
# certbot only renews a certificate within 30 days of its expiry. The nginx container's
# cert-watch.sh reloads nginx on a new certificate.
#
# The outcome of the last run goes to $NOTES_CERTBOT_STATUS, which the container's healthcheck
# reads: a failed run (the CA unreachable, a challenge that could not be served) turns the
# container unhealthy until a run succeeds, while nginx keeps serving the certificate it has.
#
# Signals (docker kill --signal ...): HUP runs certbot now; USR1 runs it now with
# --force-renewal (a renewal of a certificate that is not due yet).
#
# With $NOTES_CERT_GROUP (nginx's group: nginx does not run as root) the certificates and keys
# under live/ and archive/ are made readable by that group before and after every run; certbot
# creates them readable by its own user only. certbot runs as root without capabilities and with
# that group as its primary group: root owns the files and is a member of the group, which is
# all chgrp needs. Keys of a volume from before are fixed the same way on the first run.
#
# With $NOTES_ACME_CA_BUNDLE (PEM certificates; engine containers, whose read-only root takes no
# uploaded file) it is written to $REQUESTS_CA_BUNDLE first, the file certbot trusts for the CA.
#
#   certbot-loop.sh CERTBOT-ARG...
status=${NOTES_CERTBOT_STATUS:?NOTES_CERTBOT_STATUS is not set}
if [ -n "${NOTES_ACME_CA_BUNDLE:-}" ]; then
  printf '%s\n' "$NOTES_ACME_CA_BUNDLE" >"${REQUESTS_CA_BUNDLE:?REQUESTS_CA_BUNDLE is not set}"
fi
group=${NOTES_CERT_GROUP:-}
# share makes live/ and archive/ readable by $group (nothing without it).
share() {
  [ -n "$group" ] || return 0
  for d in /etc/letsencrypt/live /etc/letsencrypt/archive; do
    [ -d "$d" ] || continue
    if ! { chgrp -R "$group" "$d" && chmod -R g+rX "$d"; }; then
      echo "certbot-loop: cannot make $d readable by group $group: nginx may not read the certificate" >&2
    fi
  done
}
force=
pending=
sleeper=
# wake ends the hour's sleep; a signal during a run makes the loop go round again at once.
wake() {
  pending=1
  if [ -n "$sleeper" ]; then kill "$sleeper" 2>/dev/null; fi
}
# stop ends the loop, and the hour's sleep with it (a sleep left behind would keep the
# container's output open).
stop() {
  if [ -n "$sleeper" ]; then kill "$sleeper" 2>/dev/null; fi
  exit 0
}
trap 'stop' TERM INT
trap 'wake' HUP
trap 'force=--force-renewal; wake' USR1
while :; do
  run_force=$force
  force=
  pending=
  started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  share
  # shellcheck disable=SC2086 # $run_force is one word or nothing
  certbot "$@" $run_force
  rc=$?
  share
  if [ "$rc" -eq 0 ]; then
    echo "ok $started" >"$status"
    echo "certbot-loop: certbot succeeded; next run in 1h"
  else
    echo "failed $started exit $rc" >"$status"
    echo "certbot-loop: certbot failed (exit $rc); nginx keeps its current certificate; next try in 1h (docker kill --signal HUP <this container> tries now)" >&2
  fi
  [ -n "$pending" ] && continue
  sleep 3600 &
  sleeper=$!
  wait "$sleeper"
  sleeper=
done
