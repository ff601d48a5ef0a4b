#!/bin/sh
# tls=acme: runs from /docker-entrypoint.d in the nginx container. In the background, links
# certbot's certificate for @DOMAIN@ into /etc/nginx/tls once it exists and reloads nginx
# whenever certbot renews it (checked every minute).
(
  live=/etc/letsencrypt/live/@DOMAIN@
  last=""
  while :; do
    sleep 60
    [ -s "$live/fullchain.pem" ] || continue
    cur=$(cat "$live/fullchain.pem" | cksum)
    [ "$cur" = "$last" ] && continue
    mkdir -p /etc/nginx/tls
    ln -sfn "$live/fullchain.pem" /etc/nginx/tls/fullchain.pem
    ln -sfn "$live/privkey.pem" /etc/nginx/tls/privkey.pem
    if nginx -t >/dev/null 2>&1 && nginx -s reload; then
      echo "cert-watch: certificate for @DOMAIN@ installed, nginx reloaded"
      last=$cur
    fi
  done
) &
