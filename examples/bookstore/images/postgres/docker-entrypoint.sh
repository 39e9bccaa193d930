#!/bin/sh
# Entrypoint of bookstore-postgres:local, after the official postgres image's
# docker-entrypoint.sh (same variables, same first-run behaviour), written for
# busybox sh since the image has no bash:
#   - as root: own PGDATA and the socket directory, then re-run this script as
#     `postgres` (busybox su; the image has no gosu);
#   - PGDATA without PG_VERSION: initdb with POSTGRES_USER (default postgres),
#     POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE (the file wins), then create
#     POSTGRES_DB (default: the user's name) and run
#     /docker-entrypoint-initdb.d/*.sh|*.sql on a socket-only server;
#     host connections from anywhere authenticate with scram-sha-256;
#   - exec postgres, so it is PID 1 and gets the stop signal itself. The image
#     sets StopSignal SIGINT (postgres' fast shutdown: roll back open
#     transactions, checkpoint, exit), as the official image does; SIGTERM
#     would be a smart shutdown that waits for every client to leave.
set -eu

PGDATA=${PGDATA:-/var/lib/postgresql/data}
export PGDATA

log() { echo "entrypoint: $*" >&2; }
die() { log "error: $*"; exit 1; }

# `docker run image -c foo=bar` means postgres with those flags.
case "${1:-}" in
  -*) set -- postgres "$@" ;;
esac

if [ "${1:-}" != postgres ]; then
  exec "$@"
fi

if [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA" /var/run/postgresql
  # Only touch what is not already postgres' (a large data dir stays fast).
  find "$PGDATA" \! -user postgres -exec chown postgres:postgres '{}' +
  chmod 700 "$PGDATA"
  chown postgres:postgres /var/run/postgresql
  chmod 3777 /var/run/postgresql
  # busybox su as root asks no password; -p keeps the environment
  # (POSTGRES_*, PGDATA); `exec "$0" "$@"` replaces the shell, so no process
  # stays between the runtime and postgres. The `--` matters: busybox su
  # parses options anywhere on its command line, so a `-c setting=value`
  # meant for postgres would otherwise replace su's own -c command.
  exec su -p -s /bin/sh postgres -c 'exec "$0" "$@"' -- "$0" "$@"
fi

[ "$(id -u)" != 0 ] || die "still root after dropping privileges"
export HOME=/var/lib/postgresql

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then
    [ -r "$POSTGRES_PASSWORD_FILE" ] || die "POSTGRES_PASSWORD_FILE=$POSTGRES_PASSWORD_FILE is not readable"
    POSTGRES_PASSWORD=$(cat "$POSTGRES_PASSWORD_FILE")
  fi
  auth=${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}
  if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$auth" != trust ]; then
    die "the database is uninitialized and no superuser password is set: pass POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE (or POSTGRES_HOST_AUTH_METHOD=trust to allow connections without one)"
  fi
  user=${POSTGRES_USER:-postgres}
  db=${POSTGRES_DB:-$user}

  log "initializing $PGDATA for user $user, database $db"
  pwfile=$(mktemp)
  trap 'rm -f "$pwfile"' EXIT
  printf '%s\n' "${POSTGRES_PASSWORD:-}" > "$pwfile"
  # Word splitting of POSTGRES_INITDB_ARGS is intended (official behaviour).
  # shellcheck disable=SC2086
  initdb --username="$user" --pwfile="$pwfile" --auth-local=trust \
    --auth-host="$auth" ${POSTGRES_INITDB_ARGS:-} >/dev/null
  rm -f "$pwfile"
  trap - EXIT

  printf '\n# bookstore-postgres: clients from any address, with a password\nhost all all all %s\n' "$auth" >> "$PGDATA/pg_hba.conf"
  printf "\nlisten_addresses = '*'\n" >> "$PGDATA/postgresql.conf"

  # A server only on the Unix socket for the setup, as the official image does,
  # so nobody connects to a half-initialised database.
  pg_ctl -D "$PGDATA" -w -t 60 -o "-c listen_addresses='' -p 5432" start >/dev/null
  export PGUSER="$user" PGHOST=/var/run/postgresql
  if [ "$db" != postgres ]; then
    psql -v ON_ERROR_STOP=1 -q --dbname postgres --set db="$db" <<-'EOSQL'
	CREATE DATABASE :"db";
	EOSQL
  fi
  for f in /docker-entrypoint-initdb.d/*; do
    [ -e "$f" ] || continue
    case "$f" in
      *.sh) log "running $f"; . "$f" ;;
      *.sql) log "running $f"; psql -v ON_ERROR_STOP=1 -q --dbname "$db" -f "$f" ;;
      *) log "ignoring $f" ;;
    esac
  done
  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  unset PGUSER PGHOST
  log "initialized; starting postgres"
fi

exec "$@"
