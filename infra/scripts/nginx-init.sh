#!/bin/sh
# tls, engine containers: prepares the nginx container's configuration volume before the
# container is created (the container has a read-only root filesystem, and Docker refuses the
# provider's uploads into one). Runs in a throwaway container of the nginx image as root without
# any capability, primary group GROUP (nginx's), with the volume at /etc/nginx: on its first
# mount Docker copies the image's /etc/nginx into it. stdin is a base64 tar.gz of the bootstrap
# files (nginx.conf, conf.d/default.conf and, with tls=acme, notes-cert-watch.sh).
#
# The bootstrap configuration is written only while no rendered configuration is installed (a
# re-run must not undo nginx-install.sh); notes-cert-watch.sh always. Then the whole volume
# becomes group GROUP and group-writable, so nginx (an unprivileged user of that group) and the
# installer it runs can write it, as the official nginx-unprivileged image arranges /etc/nginx.
# chgrp needs no capability: root owns the files and is a member of GROUP.
#
#   nginx-init.sh GROUP < bootstrap.tar.gz.b64
set -eu
group=$1
new=$(mktemp -d)
base64 -d | tar -xzf - --no-same-owner -C "$new"
if [ ! -e /etc/nginx/conf.d/notes.conf ]; then
  mkdir -p /etc/nginx/conf.d
  cp "$new/nginx.conf" /etc/nginx/nginx.conf
  cp "$new/conf.d/default.conf" /etc/nginx/conf.d/default.conf
  echo "nginx-init: bootstrap configuration written"
fi
if [ -e "$new/notes-cert-watch.sh" ]; then
  cp "$new/notes-cert-watch.sh" /etc/nginx/notes-cert-watch.sh
  chmod 0755 /etc/nginx/notes-cert-watch.sh
fi
rm -rf "$new"
chgrp -R "$group" /etc/nginx
chmod -R g+w /etc/nginx
echo "nginx-init: /etc/nginx is group $group and group-writable"
