#!/usr/bin/env bash
# Builds the stack's images from docker/Dockerfile: monosweep-worker, monosweep-mlflow and
# monosweep-postgres (tag $TAG, default latest), with BuildKit.
#   docker/build-images.sh                       FROM the public debian:bookworm-slim, pip from PyPI
#   docker/build-images.sh --local-base          FROM a debootstrap base made here (make-base-image.sh)
#   docker/build-images.sh --host-pip            pip as this machine's pip: its CA bundle and its
#                                                local indexes (file:// ones, served on loopback
#                                                for the build), as build secrets, on host networking
#   docker/build-images.sh [...] worker mlflow   only these targets
# --local-base --host-pip is how `make cluster-test` builds where no image registry is reached.
set -euo pipefail
cd "$(dirname "$0")/.."
local_base=false host_pip=false targets=()
for arg in "$@"; do
    case $arg in
        --local-base) local_base=true ;;
        --host-pip) host_pip=true ;;
        worker | mlflow | postgres) targets+=("$arg") ;;
        *) echo "usage: $0 [--local-base] [--host-pip] [worker|mlflow|postgres ...]" >&2; exit 2 ;;
    esac
done
((${#targets[@]})) || targets=(postgres mlflow worker)
tag=${TAG:-latest}

# A client that builds with BuildKit: the buildx plugin, else a client with BuildKit built in
# (Debian's docker.io 20.10 installs one as /usr/bin/docker).
docker=docker
if ! docker buildx version > /dev/null 2>&1; then
    [[ -x /usr/bin/docker ]] && docker=/usr/bin/docker
fi
export DOCKER_BUILDKIT=1

base=${BASE_IMAGE:-debian:bookworm-slim}
if $local_base; then
    base=${BASE_IMAGE:-monosweep-base:bookworm}
    docker/make-base-image.sh "$base"
fi

build=(--build-arg "BASE_IMAGE=$base")
if $host_pip; then
    secrets=$(mktemp -d)
    server=
    trap 'rm -rf "$secrets"; [[ -z $server ]] || kill "$server"' EXIT
    cert=$(python3 -m pip config get global.cert 2> /dev/null || echo /etc/ssl/certs/ca-certificates.crt)
    # file:// indexes become http://127.0.0.1:PORT/... for the build's pip (host networking)
    read -r root port indexes < <(python3 - <<'PY'
import os, socket, subprocess, sys
urls = subprocess.run([sys.executable, "-m", "pip", "config", "get", "global.extra-index-url"], capture_output=True,
                      text=True).stdout.split()
paths = [u[len("file://"):] for u in urls if u.startswith("file://")]
root = os.path.commonpath([os.path.dirname(p.rstrip("/")) for p in paths]) if paths else "-"
with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
print(root, port, ",".join(os.path.relpath(p, root) for p in paths) or "-")
PY
    )
    {
        echo "[global]"
        echo "cert = /run/secrets/ca"
        if [[ $root != - ]]; then
            python3 -m http.server --bind 127.0.0.1 --directory "$root" "$port" > /dev/null 2>&1 &
            server=$!
            echo "extra-index-url =$(printf " http://127.0.0.1:$port/%s" ${indexes//,/ })"
            until python3 -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$port/')" 2> /dev/null; do
                sleep 0.2
            done
        fi
    } > "$secrets/pip.conf"
    build+=(--network host --secret "id=pip.conf,src=$secrets/pip.conf" --secret "id=ca,src=$cert")
fi

for target in "${targets[@]}"; do
    started=$SECONDS
    "$docker" build --progress=plain "${build[@]}" --target "$target" \
        -f docker/Dockerfile -t "monosweep-$target:$tag" . > "/tmp/monosweep-build-$target.log" 2>&1 \
        || { tail -40 "/tmp/monosweep-build-$target.log" >&2; echo "build-images: $target failed" >&2; exit 1; }
    echo "build-images: monosweep-$target:$tag in $((SECONDS - started))s (FROM $base)"
done
