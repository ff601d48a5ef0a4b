#!/bin/sh
# phase smoke: polls /readyz through nginx (so nginx, a replica and Postgres all answer) until it
# answers 200, either with curl from the machine running Pulumi, or from inside the nginx
# container (run there with `docker exec` when the published port is not reachable from here).
# On failure it names the URL and the last HTTP status and exits 1 (the program then prints the
# replicas' logs).
#
#   smoke.sh curl URL ATTEMPTS [CURL-OPTION...]   # e.g. --insecure, --connect-to HOST::ADDR:
#   smoke.sh nginx HOST ATTEMPTS                  # HOST: the Host header (public host name)
set -u
mode=$1
case $mode in
  curl)
    url=$2
    probe() { curl -sS -o /dev/null -w '%{http_code}' --max-time 5 "$@" "$url" 2>/dev/null; }
    ;;
  nginx)
    host=$2
    url="http://127.0.0.1:80/readyz (Host: $host, inside the nginx container)"
    # POSIX sh has no sockets: bash's /dev/tcp (present in the nginx images) sends the request.
    # The host name is an argument of that script ($1), never part of its text.
    # shellcheck disable=SC2016
    probe() {
      bash -c 'exec 3<>/dev/tcp/127.0.0.1/80 && printf "GET /readyz HTTP/1.0\r\nHost: %s\r\n\r\n" "$1" >&3 && head -n1 <&3' probe "$host" 2>/dev/null |
        cut -d' ' -f2
    }
    ;;
  *)
    echo "usage: smoke.sh curl URL ATTEMPTS [CURL-OPTION...] | smoke.sh nginx HOST ATTEMPTS" >&2
    exit 2
    ;;
esac
attempts=$3
shift 3
i=0
code=
while [ "$i" -lt "$attempts" ]; do
  i=$((i + 1))
  code=$(probe "$@") || true
  if [ "$code" = 200 ]; then
    echo "phase smoke: $url answered 200 (attempt $i)"
    exit 0
  fi
  sleep 2
done
echo "phase smoke: FAILED: $url did not answer 200 after $attempts attempts (last HTTP status: ${code:-none})" >&2
exit 1
