#!/bin/sh
# Secrets arrive as files (compose `secrets:`, Kubernetes Secret volumes). For every variable
# NAME_FILE=path in the environment, export NAME=<the file's contents>, then run the command:
# the values never appear in a compose file, in `docker inspect` or in a process's arguments.
# (PostgreSQL's libpq reads PGPASSWORD, MLflow's client MLFLOW_TRACKING_PASSWORD, boto3
# AWS_SECRET_ACCESS_KEY; Ray reads its token file itself, from RAY_AUTH_TOKEN_PATH.)
set -eu
for name in $(env | sed -n 's/^\([A-Z][A-Z0-9_]*\)_FILE=.*/\1/p'); do
    eval "path=\${${name}_FILE}"
    if [ ! -r "$path" ]; then
        echo "entrypoint: ${name}_FILE=$path is not a readable file" >&2
        exit 1
    fi
    value=$(cat "$path")
    export "$name=$value"
    unset "${name}_FILE"
done
exec "$@"
