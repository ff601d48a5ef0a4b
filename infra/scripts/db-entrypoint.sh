#!/bin/sh
# The Postgres container's entrypoint. The docker provider writes uploaded files as root; the
# image's own entrypoint reads POSTGRES_PASSWORD_FILE only after it dropped to the postgres user,
# so the password file is handed to that user (mode 0400) first. Then the image's entrypoint runs
# with the container's command.
#
#   db-entrypoint.sh postgres [OPTION...]
set -eu
chown postgres:postgres "$POSTGRES_PASSWORD_FILE"
chmod 0400 "$POSTGRES_PASSWORD_FILE"
exec docker-entrypoint.sh "$@"
