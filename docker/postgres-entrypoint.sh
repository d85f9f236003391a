#!/bin/bash
# PostgreSQL as the official `postgres` image starts it, for the variables compose.yaml sets:
# on an empty $PGDATA, initdb with POSTGRES_USER as the superuser and the password from
# POSTGRES_PASSWORD_FILE (scram-sha-256 for every remote client), create POSTGRES_DB, run
# /docker-entrypoint-initdb.d/*.sql once; then exec the command (`postgres`).
set -euo pipefail
user=${POSTGRES_USER:-postgres}
if [[ ! -s "$PGDATA/PG_VERSION" ]]; then
    password_file=${POSTGRES_PASSWORD_FILE:?POSTGRES_PASSWORD_FILE names the password secret}
    initdb --username="$user" --pwfile="$password_file" --auth-local=trust \
        --auth-host=scram-sha-256 --encoding=UTF8 > /dev/null
    echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
    pg_ctl --wait --silent --options="-c listen_addresses=''" start
    db=${POSTGRES_DB:-$user}
    [[ "$db" == postgres ]] || psql --quiet --username="$user" --dbname=postgres \
        --command="CREATE DATABASE \"$db\""
    for script in /docker-entrypoint-initdb.d/*.sql; do
        [[ -e "$script" ]] && psql --quiet --username="$user" --dbname="$db" --file="$script"
    done
    pg_ctl --wait --silent --mode=fast stop
fi
if [[ "$1" == postgres ]]; then
    exec "$@" -c listen_addresses='*'
fi
exec "$@"
