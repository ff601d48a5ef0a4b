#!/bin/sh
# phase roll out: installs the rendered nginx configuration inside the nginx container (run with
# `docker exec -i` by the Pulumi program; stdin is a base64 tar.gz of files relative to
# /etc/nginx) and reloads nginx gracefully. The previous configuration is restored when
# `nginx -t` fails, so a bad render never reaches a restart.
#
# The site comes in two forms: conf.d/notes.conf finds the replicas with a variable proxy_pass
# (every nginx; no upstream keep-alive), notes-resolve/notes.conf with "server ... resolve" in
# the upstream (nginx 1.27.3 and later; keeps the keep-alive pool). The second is installed when
# the running nginx is recent enough and accepts it (docs/nginx.md has the measured difference).
#
#   nginx-install.sh TLS_MODE DOMAIN TMP PLACEHOLDER_DIR [MODE]
#     TLS_MODE         off, provided or acme
#     DOMAIN           certificate name (acme)
#     TMP              scratch path prefix inside the container
#     PLACEHOLDER_DIR  directory under /etc/nginx with the self-signed placeholder (acme)
#     MODE             install (the default), or check: the same steps in a throw-away
#                      container of the nginx image, ending with `nginx -t` and no reload, so a
#                      configuration nginx rejects fails the deploy before anything changes
set -eu

# supports_resolve VERSION: whether nginx VERSION (e.g. 1.27.3) takes "server ... resolve" in an
# upstream block.
supports_resolve() {
  major=${1%%.*}
  rest=${1#*.}
  case "$rest" in *.*) ;; *) return 1 ;; esac
  minor=${rest%%.*}
  patch=${rest#*.}
  patch=${patch%%[!0-9]*}
  case "$major$minor$patch" in *[!0-9]* | "") return 1 ;; esac
  [ "$major" -gt 1 ] && return 0
  [ "$major" -eq 1 ] || return 1
  [ "$minor" -gt 27 ] && return 0
  [ "$minor" -eq 27 ] && [ "$patch" -ge 3 ]
}
# END supports_resolve

tls=$1
domain=$2
tmp=$3
placeholder=$4
mode=${5:-install}
case $mode in install | check) ;; *) echo "nginx-install.sh: MODE must be install or check, got '$mode'" >&2; exit 2 ;; esac
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
  else
    # Always the placeholder of this configuration: one installed by an older version of the
    # program (whose key came from the domain) is replaced.
    echo "phase roll out: no certificate from certbot yet; serving a self-signed placeholder"
    # rm first: a link into certbot's (read-only) volume left from a deleted lineage.
    rm -f /etc/nginx/tls/fullchain.pem /etc/nginx/tls/privkey.pem
    cp "/etc/nginx/$placeholder/fullchain.pem" /etc/nginx/tls/fullchain.pem
    cp "/etc/nginx/$placeholder/privkey.pem" /etc/nginx/tls/privkey.pem
  fi
fi
if [ -e /etc/nginx/tls/privkey.pem ]; then chmod 600 /etc/nginx/tls/privkey.pem 2>/dev/null || true; fi
version=$(nginx -v 2>&1 | sed -n 's|.*nginx/\([0-9][0-9.]*\).*|\1|p')
form="variable proxy_pass, no upstream keep-alive"
if supports_resolve "$version"; then
  cp /etc/nginx/notes-resolve/notes.conf /etc/nginx/conf.d/notes.conf
  form="upstream server resolve, upstream keep-alive"
  if ! nginx -t >/dev/null 2>&1; then
    echo "phase roll out: warning: nginx $version rejects the resolve form; using the variable proxy_pass" >&2
    cp "$new/conf.d/notes.conf" /etc/nginx/conf.d/notes.conf
    form="variable proxy_pass, no upstream keep-alive"
  fi
fi
echo "phase roll out: nginx $version: replicas by DNS ($form)"
if ! nginx -t 2>&1; then
  if [ "$mode" = check ]; then
    echo "phase check: nginx $version rejects the new configuration (above); nothing of the stack was changed" >&2
    exit 1
  fi
  echo "phase roll out: nginx -t failed; restoring the previous configuration" >&2
  # /etc/nginx may be a mount point (engine containers: the configuration volume): empty it
  # rather than remove it.
  find /etc/nginx -mindepth 1 -maxdepth 1 -exec rm -rf {} +
  cp -a "$prev"/. /etc/nginx/
  rm -rf "$new" "$prev"
  exit 1
fi
if [ "$mode" = check ]; then
  echo "phase check: nginx $version accepts the new configuration"
  exit 0
fi
nginx -s reload
rm -rf "$new" "$prev"
# Give the master a moment to start the new workers before old replicas are stopped.
sleep 2
echo "phase roll out: nginx configuration installed and nginx reloaded"
