#!/bin/sh
# phase smoke, from inside the nginx container (run with `docker exec` on the Docker host when
# the published port is not reachable from the machine running Pulumi): polls /readyz through
# nginx's own listener and the upstreams until it answers 200. On failure it names the URL and
# the last HTTP status and exits 1 (the program then prints the replicas' logs).
#
#   smoke-nginx.sh HOST ATTEMPTS    # HOST: the Host header (the stack's public host name)
set -u
host=$1
attempts=$2
url="http://127.0.0.1:80/readyz (Host: $host, inside the nginx container)"
i=0
code=
while [ "$i" -lt "$attempts" ]; do
  i=$((i + 1))
  # POSIX sh has no sockets: bash's /dev/tcp (present in the nginx images) sends the request.
  # The host name is an argument of that script ($1), never part of its text.
  # shellcheck disable=SC2016
  line=$(bash -c 'exec 3<>/dev/tcp/127.0.0.1/80 && printf "GET /readyz HTTP/1.0\r\nHost: %s\r\n\r\n" "$1" >&3 && head -n1 <&3' probe "$host" 2>/dev/null) || true
  code=$(printf '%s\n' "$line" | cut -d' ' -f2)
  if [ "$code" = 200 ]; then
    echo "phase smoke: $url answered 200 (attempt $i)"
    exit 0
  fi
  sleep 2
done
echo "phase smoke: FAILED: $url did not answer 200 after $attempts attempts (last HTTP status: ${code:-none})" >&2
exit 1
