# syntax=docker/dockerfile:1
# Build stage: the hashed locks into a virtualenv, then the package itself from this checkout.
# Everything pip installs is hash-checked (--require-hashes), the build tools too: they come
# from requirements-build.txt and builds run without isolation (gunicorn-h1c ships only an
# sdist, so this stage has a C compiler; the final stage copies the venv and has none).
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# hadolint ignore=DL3008
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
COPY requirements-build.txt requirements.txt /tmp/
RUN /opt/venv/bin/pip install --no-compile --require-hashes -r /tmp/requirements-build.txt \
 && /opt/venv/bin/pip install --no-compile --require-hashes --no-build-isolation -r /tmp/requirements.txt
# The package: its code, the page, and the page's client (the npm package's file, linked into static/).
COPY pyproject.toml README.md /src/
COPY pledge_ws /src/pledge_ws
COPY clients/js/src/pledge-ws.js /src/clients/js/src/pledge-ws.js
RUN /opt/venv/bin/pip install --no-compile --no-deps --no-build-isolation /src \
 && /opt/venv/bin/pip uninstall -y setuptools wheel

# Final stage: the venv only; no compilers, no pip cache, no source tree; a non-root user.
FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PORT=8000
# A fixed uid/gid 10001 (outside the system range, so not --system: useradd warns about that),
# no home directory made, no lastlog/faillog entry (-l: a high uid makes those files huge).
RUN groupadd --gid 10001 app \
 && useradd --uid 10001 --gid app --no-create-home --no-log-init --home-dir /app --shell /usr/sbin/nologin app
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 CMD ["pledge-ws", "--healthcheck"]
STOPSIGNAL SIGTERM
CMD ["pledge-ws"]
