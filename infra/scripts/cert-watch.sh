#!/bin/sh
# tls=acme: runs from /docker-entrypoint.d in the nginx container. In the background, links
# certbot's certificate for $NOTES_CERT_DOMAIN (set on the container by the Pulumi program) into
# /etc/nginx/tls once it exists and reloads nginx gracefully whenever certbot renews it (checked
# every 10 s: a cksum of one small file). A certificate that nginx -t refuses (certbot has
# written the chain but not yet the key) is tried again on the next round; nginx keeps serving
# the one it has.
#
# On engine swarm nginx starts with no installer after it: with $NOTES_CERT_PLACEHOLDER (the
# directory the placeholder certificate is mounted in) this script first, before nginx starts,
# links certbot's certificate into /etc/nginx/tls, or copies the placeholder there while there is
# none.
domain=${NOTES_CERT_DOMAIN:?NOTES_CERT_DOMAIN is not set}
placeholder=${NOTES_CERT_PLACEHOLDER:-}
if [ -n "$placeholder" ]; then
  live=/etc/letsencrypt/live/$domain
  mkdir -p /etc/nginx/tls
  if [ -s "$live/fullchain.pem" ] && [ -s "$live/privkey.pem" ]; then
    ln -sfn "$live/fullchain.pem" /etc/nginx/tls/fullchain.pem
    ln -sfn "$live/privkey.pem" /etc/nginx/tls/privkey.pem
  else
    echo "cert-watch: no certificate from certbot yet; serving a self-signed placeholder"
    cp "$placeholder/fullchain.pem" /etc/nginx/tls/fullchain.pem
    cp "$placeholder/privkey.pem" /etc/nginx/tls/privkey.pem
    chmod 600 /etc/nginx/tls/privkey.pem
  fi
fi
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
