#!/bin/sh
# tls=acme: runs from /docker-entrypoint.d in the nginx container. In the background, links
# certbot's certificate for $NOTES_CERT_DOMAIN (set on the container by the Pulumi program) into
# /etc/nginx/tls once it exists and reloads nginx whenever certbot renews it (checked every
# minute).
domain=${NOTES_CERT_DOMAIN:?NOTES_CERT_DOMAIN is not set}
(
  live=/etc/letsencrypt/live/$domain
  last=""
  while :; do
    sleep 60
    [ -s "$live/fullchain.pem" ] || continue
    cur=$(cksum <"$live/fullchain.pem")
    [ "$cur" = "$last" ] && continue
    mkdir -p /etc/nginx/tls
    ln -sfn "$live/fullchain.pem" /etc/nginx/tls/fullchain.pem
    ln -sfn "$live/privkey.pem" /etc/nginx/tls/privkey.pem
    if nginx -t >/dev/null 2>&1 && nginx -s reload; then
      echo "cert-watch: certificate for $domain installed, nginx reloaded"
      last=$cur
    fi
  done
) &
