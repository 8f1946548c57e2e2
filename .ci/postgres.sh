#!/bin/sh
# Start a throwaway PostgreSQL server on localhost:5432 (trust auth, superuser "postgres")
# for the labeling app's storage tests. Needs root (apt-get, runuser). Exports nothing;
# point the tests at it with
#   ALIGNSTACK_TEST_PG_URL=postgresql+psycopg://postgres@localhost:5432/postgres
set -eu
export DEBIAN_FRONTEND=noninteractive
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    apt-get update -q
    apt-get install -y -q postgresql
fi
PGVER=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
PGBIN=/usr/lib/postgresql/$PGVER/bin
PGDATA=${ALIGNSTACK_PGDATA:-/tmp/alignstack-pg}
# Debian may have created and started its own "main" cluster on 5432; stop it to free the port.
pg_ctlcluster "$PGVER" main stop >/dev/null 2>&1 || true
if [ -f "$PGDATA/postmaster.pid" ]; then
    runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDATA" -m fast stop || true
fi
rm -rf "$PGDATA"
mkdir -p "$PGDATA"
chown postgres:postgres "$PGDATA"
runuser -u postgres -- "$PGBIN/initdb" -D "$PGDATA" -U postgres -A trust -E UTF8 >/dev/null
runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDATA" -l "$PGDATA/server.log" -w \
    -o "-c listen_addresses=localhost -p 5432 -k /tmp -c fsync=off" start  # fsync off: throwaway test data
runuser -u postgres -- "$PGBIN/pg_isready" -h localhost -p 5432
