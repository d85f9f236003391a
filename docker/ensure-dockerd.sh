#!/usr/bin/env bash
# Makes sure a Docker daemon answers, for `make cluster-test` and tests/test_docker_stack.py:
# one that runs already is used as it is; else, as root, Debian's docker.io (and the tools the
# stack test uses: debootstrap, docker-compose) is installed if missing and `dockerd` started in
# the background (log: /var/log/monosweep-dockerd.log). Exit 0 when a daemon answers; else
# non-zero with one line on stderr that says why (the test skips with it).
set -uo pipefail
docker_cli() { if command -v docker > /dev/null; then docker "$@"; else /usr/bin/docker "$@"; fi; }
answers() { docker_cli info > /dev/null 2>&1; }

if ! command -v docker-compose > /dev/null || ! command -v debootstrap > /dev/null \
    || ! command -v dockerd > /dev/null; then
    if [[ $(id -u) -ne 0 ]] || ! command -v apt-get > /dev/null; then
        answers && command -v docker-compose > /dev/null && exit 0
        echo "no dockerd/docker-compose/debootstrap, and not root with apt-get to install them" >&2
        exit 1
    fi
    { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
        --no-install-recommends docker.io docker-compose debootstrap; } > /tmp/monosweep-apt.log 2>&1 \
        || { echo "apt-get install docker.io docker-compose debootstrap failed (/tmp/monosweep-apt.log)" >&2; exit 1; }
fi
answers && exit 0
if [[ $(id -u) -ne 0 ]]; then
    echo "no Docker daemon answers, and starting dockerd needs root" >&2
    exit 1
fi
# The package's service may not start where there is no init system: start it ourselves.
nohup dockerd > /var/log/monosweep-dockerd.log 2>&1 &
for _ in $(seq 60); do
    answers && exit 0
    sleep 1
done
echo "dockerd did not answer within 60 s: $(tail -1 /var/log/monosweep-dockerd.log)" >&2
exit 1
