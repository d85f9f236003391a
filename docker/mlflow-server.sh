#!/bin/sh
# The tracking server (the mlflow image's command): `mlflow server "$@"`, then, once it answers,
# the sweep's non-admin user (mlflow_users.py: created if missing, its password from its
# secret, permission on the sweep's experiments only). The server stays the container's main
# work: this script waits on it and hands it SIGTERM/SIGINT.
set -eu
mlflow server "$@" &
server=$!
trap 'kill -TERM "$server" 2> /dev/null' TERM INT
port=5000
for arg in "$@"; do
    case $arg in --port=*) port=${arg#--port=} ;; esac
done
until python -c "import urllib.request as u; u.urlopen('http://localhost:$port/health', timeout=5)" 2> /dev/null; do
    kill -0 "$server" 2> /dev/null || { wait "$server"; exit $?; }
    sleep 2
done
rm -f /tmp/mlflow-ready
python /usr/local/bin/mlflow_users.py "http://localhost:$port" || {
    echo "mlflow-server: setting up the sweep's user failed; stopping the server" >&2
    kill -TERM "$server"
    wait "$server" || true
    exit 1
}
touch /tmp/mlflow-ready  # the healthcheck waits for it: the sweep's user can sign in now
wait "$server"
