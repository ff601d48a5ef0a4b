#!/bin/sh
# tls=acme: runs from /docker-entrypoint.d in the nginx container. In the background, links
# certbot's certificate for $NOTES_CERT_DOMAIN (set on the container by the Pulumi program) into
# /etc/nginx/tls once it exists and reloads nginx gracefully whenever certbot renews it (checked
# every 10 s: a cksum of one small file). A certificate that nginx -t refuses (certbot has
# written the chain but not yet the key) is tried again on the next round; nginx keeps serving
# the one it has.
domain=${NOTES_CERT_DOMAIN:?NOTES_CERT_DOMAIN is not set}
(
  live=/etc/letsencrypt/live/$domain
  last=""
  refused=""
  while :; do
    sleep 10
    [ -s "$live/fullchain.pem" ] || continue
    cur=$(cksum <"$live/fullchain.pem")$(cksum <"$live/privkey.pem")
    [ "$cur" = "$last" ] && continue
    mkdir -p /etc/nginx/tls
    ln -sfn "$live/fullchain.pem" /etc/nginx/tls/fullchain.pem
    ln -sfn "$live/privkey.pem" /etc/nginx/tls/privkey.pem
    if out=$(nginx -t 2>&1) && nginx -s reload; then
      echo "cert-watch: certificate for $domain installed, nginx reloaded"
      last=$cur
    elif [ "$cur" != "$refused" ]; then
      echo "cert-watch: nginx refuses the new certificate for $domain (tried again in 10 s): $out" >&2
      refused=$cur
    fi
  done
) &
