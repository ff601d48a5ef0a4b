#!/bin/sh
# phase roll out: installs the rendered nginx configuration inside the nginx container (run with
# `docker exec -i` by the Pulumi program; stdin is a base64 tar.gz of files relative to
# /etc/nginx) and reloads nginx gracefully. The previous configuration is restored when
# `nginx -t` fails, so a bad render never reaches a restart.
#
#   nginx-install.sh TLS_MODE DOMAIN TMP PLACEHOLDER_DIR
#     TLS_MODE         off, provided or acme
#     DOMAIN           certificate name (acme)
#     TMP              scratch path prefix inside the container
#     PLACEHOLDER_DIR  directory under /etc/nginx with the self-signed placeholder (acme)
set -eu
tls=$1
domain=$2
tmp=$3
placeholder=$4
new=$tmp.new
prev=$tmp.prev
rm -rf "$new" "$prev"
mkdir -p "$new"
base64 -d | tar -xzf - -C "$new"
cp -a /etc/nginx "$prev"
cp -R "$new"/. /etc/nginx/
rm -f /etc/nginx/conf.d/default.conf
if [ "$tls" = acme ]; then
  mkdir -p /etc/nginx/tls
  live=/etc/letsencrypt/live/$domain
  if [ -s "$live/fullchain.pem" ] && [ -s "$live/privkey.pem" ]; then
    ln -sfn "$live/fullchain.pem" /etc/nginx/tls/fullchain.pem
    ln -sfn "$live/privkey.pem" /etc/nginx/tls/privkey.pem
  elif [ ! -e /etc/nginx/tls/fullchain.pem ]; then
    echo "phase roll out: no certificate from certbot yet; serving a self-signed placeholder"
    cp "/etc/nginx/$placeholder/fullchain.pem" /etc/nginx/tls/fullchain.pem
    cp "/etc/nginx/$placeholder/privkey.pem" /etc/nginx/tls/privkey.pem
  fi
fi
if [ -e /etc/nginx/tls/privkey.pem ]; then chmod 600 /etc/nginx/tls/privkey.pem 2>/dev/null || true; fi
if ! nginx -t 2>&1; then
  echo "phase roll out: nginx -t failed; restoring the previous configuration" >&2
  rm -rf /etc/nginx
  cp -a "$prev" /etc/nginx
  rm -rf "$new" "$prev"
  exit 1
fi
nginx -s reload
rm -rf "$new" "$prev"
# Give the master a moment to start the new workers before old replicas are stopped.
sleep 2
echo "phase roll out: nginx configuration installed and nginx reloaded"
