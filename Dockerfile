# SPDX-License-Identifier: Apache-2.0
# The production image of the sample app (`endpoints-hello`): REST on 8080, gRPC on 50051.
# Build:  docker build -t genkit-endpoints:0.1.0 .      (podman build works the same)
# Run:    docker run --rm --read-only -p 8080:8080 -p 50051:50051 genkit-endpoints:0.1.0
# See deploy/README.md for everything else (secrets, read-only runs, Kubernetes).
#
# Base images are pinned by digest: the same bytes on every build. The digest is that of
# the multi-arch index of python:3.12-slim when it was pinned (no registry is reachable
# from where this file was written, so it was not re-resolved there). To bump it, resolve
# the tag again and replace the digest in BOTH FROM lines and in the base.digest label:
#   docker buildx imagetools inspect python:3.12-slim --format '{{json .Manifest.Digest}}'
# (or: skopeo inspect --format '{{.Digest}}' docker://docker.io/library/python:3.12-slim).
# tests/deploy/test_container.py checks that both stages use the same pinned image.
#
# Extras installed: providers (Gemini + OpenAI-compatible), redis (shared rate limits,
# cache and breaker across replicas), sentry (crash reports, only with SENTRY_DSN). Not
# installed: litestar, quart, granian, hypercorn, gunicorn: the image serves FastAPI on
# uvicorn, which needs no extra. To add one, append `--extra NAME` to both `uv sync` lines.

# ---------------------------------------------------------------------------- build ---
FROM python:3.12-slim@sha256:78387bc3881b8273120a12ebe6c1ab22b018ccc2c9adf565ae1ac9b536e184ea AS build

# uv, pinned; the lock file pins everything it installs.
ARG UV_VERSION=0.13.10
RUN pip install --no-cache-dir --disable-pip-version-check "uv==${UV_VERSION}"

# The venv lives where the runtime stage runs it from, made with the base image's own
# Python (the runtime stage has the same one at the same path, so its links hold).
ENV UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_PYTHON=/usr/local/bin/python3.12 \
    UV_PYTHON_DOWNLOADS=never \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1

WORKDIR /src

# Dependencies first (their layer is reused while only our code changes) ...
COPY pyproject.toml uv.lock README.md LICENSE ./
COPY apps/endpoints-hello/pyproject.toml apps/endpoints-hello/README.md apps/endpoints-hello/
RUN uv sync --frozen --no-dev --no-install-workspace --all-packages \
      --extra providers --extra redis --extra sentry

# ... then the kit and the sample app, installed as wheels (not editable): the venv is
# then all the runtime stage needs, with no path back to /src.
COPY src/ src/
COPY apps/endpoints-hello/src/ apps/endpoints-hello/src/
RUN uv sync --frozen --no-dev --no-editable --all-packages \
      --extra providers --extra redis --extra sentry

# -------------------------------------------------------------------------- runtime ---
FROM python:3.12-slim@sha256:78387bc3881b8273120a12ebe6c1ab22b018ccc2c9adf565ae1ac9b536e184ea AS runtime

ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="genkit-endpoints" \
      org.opencontainers.image.description="Genkit AI flows served as REST + SSE and gRPC endpoints (sample app endpoints-hello)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.vendor="genkit-endpoints developers" \
      org.opencontainers.image.authors="genkit-endpoints developers" \
      org.opencontainers.image.base.name="docker.io/library/python:3.12-slim" \
      org.opencontainers.image.base.digest="sha256:78387bc3881b8273120a12ebe6c1ab22b018ccc2c9adf565ae1ac9b536e184ea"

# A fixed numeric user (10001, above every distribution's system range) with no shell
# and no home of its own: Kubernetes' runAsNonRoot can verify a numeric USER.
RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /tmp \
      --shell /usr/sbin/nologin app

# Owned by root and not writable by the app: code cannot be changed at run time.
COPY --from=build /opt/venv /opt/venv

# The root filesystem may be (and in deploy/k8s is) read-only: everything written at
# run time goes to /tmp — a volume here, an emptyDir on Kubernetes — temporary files
# (TMPDIR), the Prometheus multiprocess files (PROMETHEUS_MULTIPROC_DIR, created and
# emptied at start-up) and anything a library puts under HOME.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    TMPDIR=/tmp \
    PROMETHEUS_MULTIPROC_DIR=/tmp/prometheus-multiproc \
    LOG_FORMAT=json \
    PORT=8080 \
    GRPC_PORT=50051

# An empty working directory: settings come from the environment (no .env baked in).
WORKDIR /app
VOLUME ["/tmp"]
USER 10001:10001
EXPOSE 8080 50051

# The server drains on SIGTERM (readiness 503, gRPC NOT_SERVING, SHUTDOWN_GRACE for
# requests in flight), then exits 0. Give `docker stop -t` more than SHUTDOWN_GRACE.
STOPSIGNAL SIGTERM

# Liveness with the image's own Python (no curl here): GET /health on the REST port,
# without proxies, with Host "localhost" (add it to TRUSTED_HOSTS if you set that);
# any failure is an exception, so exit code 1.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["/opt/venv/bin/python", "-c", "import os, urllib.request as u; u.build_opener(u.ProxyHandler({})).open(u.Request('http://127.0.0.1:' + os.environ.get('PORT', '8080') + '/health', headers={'Host': 'localhost'}), timeout=4)"]

ENTRYPOINT ["/opt/venv/bin/endpoints-hello"]
CMD []
