#!/bin/sh
# phase smoke: polls URL (healthUrl, /readyz through nginx, so nginx, a replica and Postgres all
# answer) with curl from the machine running Pulumi until it answers 200. On failure it names
# the URL and the last HTTP status and exits 1 (the program then prints the replicas' logs).
#
#   smoke.sh URL ATTEMPTS [CURL-OPTION...]    # e.g. --insecure, --connect-to HOST::ADDR:
set -u
url=$1
attempts=$2
shift 2
i=0
code=
while [ "$i" -lt "$attempts" ]; do
  i=$((i + 1))
  code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 5 "$@" "$url" 2>/dev/null) || true
  if [ "$code" = 200 ]; then
    echo "phase smoke: $url answered 200 (attempt $i)"
    exit 0
  fi
  sleep 2
done
echo "phase smoke: FAILED: $url did not answer 200 after $attempts attempts (last HTTP status: ${code:-none})" >&2
exit 1
