#!/bin/sh
# tls=acme: the certbot container's entrypoint. Runs `certbot ARGS...` (certonly --webroot ...,
# given by the Pulumi program as arguments) now and then every hour; with --keep-until-expiring
# certbot only renews a certificate within 30 days of its expiry. The nginx container's
# cert-watch.sh reloads nginx on a new certificate.
#
#   certbot-loop.sh CERTBOT-ARG...
trap 'exit 0' TERM INT
while :; do
  certbot "$@" || echo "certbot failed; retrying in 1h" >&2
  sleep 3600 &
  wait $!
done
