#!/usr/bin/env bash
# `make run` installs requirements.txt only, and so does the Dockerfile: check that those pins
# alone can load the app and gunicorn's gevent worker (the dev deps can hide a missing one).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
python3 -m venv "$dir/venv"
"$dir/venv/bin/pip" install -q --disable-pip-version-check --require-hashes -r requirements.txt 2>&1 | grep -v '^WARNING' || true
"$dir/venv/bin/pip" check
"$dir/venv/bin/python" -c "import gunicorn.workers.ggevent, app; print('runtime requirements: app and gevent worker load')"
