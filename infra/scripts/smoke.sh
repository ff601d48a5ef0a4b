#!/bin/sh
# phase smoke, second half of the proof: polls /readyz through nginx until it answers 200 with
# `X-Notes-Revision: REVISION` (a response of the new replicas, not of any healthy peer), either
# with curl from the machine running Pulumi, or from inside the nginx container (run there with
# `docker exec` when the published port is not reachable from here). On failure it names the URL,
# the last HTTP status and revision, and exits 1 (the program then prints the replicas' logs).
#
#   smoke.sh curl URL ATTEMPTS REVISION [CURL-OPTION...]   # e.g. --connect-to HOST::ADDR:
#   smoke.sh nginx HOST ATTEMPTS REVISION                  # HOST: the Host header (public host name)
#
# With https, curl always verifies the certificate: against its default trust store
# (a public CA), and when that fails against the PEM certificates in $NOTES_SMOKE_CA if set (the
# stack's pinned tls=acme placeholder and the private ACME CA of notes:acmeCaBundle, or the
# tls=provided chain itself).
set -u
mode=$1
case $mode in
  curl)
    url=$2
    ca=
    if [ -n "${NOTES_SMOKE_CA:-}" ]; then
      ca=$(mktemp)
      trap 'rm -f "$ca"' EXIT
      printf '%s\n' "$NOTES_SMOKE_CA" >"$ca"
    fi
    probe() {
      curl -sS -o /dev/null -D - --max-time 5 "$@" "$url" 2>/dev/null && return
      # 60: the certificate does not verify against the default trust store.
      [ $? -eq 60 ] && [ -n "$ca" ] && curl -sS -o /dev/null -D - --max-time 5 --cacert "$ca" "$@" "$url" 2>/dev/null
    }
    ;;
  nginx)
    host=$2
    url="http://127.0.0.1:80/readyz (Host: $host, inside the nginx container)"
    # POSIX sh has no sockets: bash's /dev/tcp (present in the nginx images) sends the request.
    # The host name is an argument of that script ($1), never part of its text.
    # shellcheck disable=SC2016
    probe() {
      bash -c 'exec 3<>/dev/tcp/127.0.0.1/80 && printf "GET /readyz HTTP/1.0\r\nHost: %s\r\n\r\n" "$1" >&3 && sed "/^\r\{0,1\}$/q" <&3' probe "$host" 2>/dev/null
    }
    ;;
  *)
    echo "usage: smoke.sh curl URL ATTEMPTS REVISION [CURL-OPTION...] | smoke.sh nginx HOST ATTEMPTS REVISION" >&2
    exit 2
    ;;
esac
attempts=$3
want=$4
shift 4
i=0
code=
rev=
while [ "$i" -lt "$attempts" ]; do
  i=$((i + 1))
  headers=$(probe "$@" | tr -d '\r') || true
  code=$(printf '%s\n' "$headers" | sed -n '1s/^HTTP\/[0-9.]* \([0-9]*\).*/\1/p')
  rev=$(printf '%s\n' "$headers" | sed -n 's/^[Xx]-[Nn]otes-[Rr]evision: *//p' | tail -n 1)
  if [ "$code" = 200 ] && [ "$rev" = "$want" ]; then
    echo "phase smoke: $url answered 200 from revision $want (attempt $i)"
    exit 0
  fi
  sleep 2
done
echo "phase smoke: FAILED: $url did not answer 200 from revision $want after $attempts attempts (last HTTP status: ${code:-none}, revision: ${rev:-none})" >&2
if [ "$mode" = curl ] && [ -z "$code" ]; then
  # No answer at all: say why (a refused connection, or a certificate that did not verify:
  # with a private ACME CA its root belongs in notes:acmeCaBundle).
  if [ -n "$ca" ]; then set -- --cacert "$ca" "$@"; fi
  curl -sS -o /dev/null --max-time 5 "$@" "$url" 2>&1 | sed 's/^/phase smoke: curl: /' >&2
fi
exit 1
