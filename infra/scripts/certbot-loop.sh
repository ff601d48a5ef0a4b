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
#   certbot-loop.sh CERTBOT-ARG...
status=${NOTES_CERTBOT_STATUS:?NOTES_CERTBOT_STATUS is not set}
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
  # shellcheck disable=SC2086 # $run_force is one word or nothing
  certbot "$@" $run_force
  rc=$?
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
