#!/usr/bin/env bash
# Makes `docker.io/library/python:3.11-slim` available to podman without a registry: where no
# registry is reachable (this CI machine kind), a local stand-in built from Debian bookworm
# packages with mmdebstrap, imported and tagged as the base the Dockerfile names, with a label
# saying what it is. The Dockerfile itself stays standard. Does nothing when an image with that
# name is already in podman's storage (the real one, or a stand-in from an earlier run).
# python3.11-dev: the real python:3.11-slim ships Python's headers, which gunicorn-h1c's sdist
# needs in the build stage.
set -euo pipefail
IMAGE=docker.io/library/python:3.11-slim
PODMAN=(podman --runtime runc --cgroup-manager=cgroupfs --events-backend=file)
if "${PODMAN[@]}" image exists "$IMAGE"; then
  exit 0
fi
command -v mmdebstrap >/dev/null || { echo "mmdebstrap not installed (apt-get install mmdebstrap)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "building a local stand-in for $IMAGE (mmdebstrap, Debian bookworm)"
mmdebstrap --quiet --variant=minbase \
  --include=python3,python3-venv,python-is-python3,python3.11-dev,ca-certificates \
  bookworm "$work/base.tar"
"${PODMAN[@]}" import \
  --change 'LABEL org.opencontainers.image.description="LOCAL STAND-IN for python:3.11-slim: Debian bookworm minbase + python3 (mmdebstrap), not the Docker Hub image"' \
  --change 'LABEL dev.pledge-ws.standin=true' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["python3"]' \
  "$work/base.tar" "$IMAGE" >/dev/null
echo "tagged $IMAGE (stand-in)"
