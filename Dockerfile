# syntax=docker/dockerfile:1
# The gammaxds image: the control plane (`serve --in-cluster`) and the init step of a meshed pod
# (`capture --apply`, `bootstrap ...`). No Envoy in it: sidecars run the official Envoy image.
#   make image    # docker build -t gammaxds:0.1.0 .
# The build context is the repository root; .dockerignore lets in only what the build stage copies.

# One base for both stages, so the virtualenv built in the first runs on the same Python in the second.
FROM python:3.11.16-slim-bookworm AS base

# The build stage: the project's wheel, installed with its runtime dependencies (never the `test` extra, which
# brings Envoy and the linters) into a virtualenv without pip, so the runtime stage copies one directory.
FROM base AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
COPY pyproject.toml README.md ./
COPY gammaxds ./gammaxds
RUN pip wheel --no-deps --wheel-dir /wheels . \
    && python -m venv --without-pip /opt/gammaxds \
    && pip --python /opt/gammaxds/bin/python install /wheels/gammaxds-*.whl

FROM base
LABEL org.opencontainers.image.title="gammaxds" \
      org.opencontainers.image.description="An xDS control plane for Envoy sidecars that implements GAMMA (Gateway API for service mesh)" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11.16-slim-bookworm"

# iptables (with ip6tables): the image is also the capture init container, whose `gammaxds capture --apply`
# installs the REDIRECT rules with it. That container runs as root with NET_ADMIN and NET_RAW; all else runs
# as 65532.
RUN apt-get update \
    && apt-get install -y --no-install-recommends iptables=1.8.9-2 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 65532 gammaxds \
    && useradd --system --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin gammaxds

COPY --from=build /opt/gammaxds /opt/gammaxds

# Bytecode was compiled at install time, and the Deployment's root filesystem is read-only: never write any.
# Logs go to a pipe, not a terminal: unbuffered, so they show as they happen.
ENV PATH=/opt/gammaxds/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1

# The user deploy/kubernetes/20-deployment.yaml runs as (runAsUser: 65532, runAsNonRoot: true).
USER 65532:65532
WORKDIR /
# xDS (gRPC) and admin (/healthz, /readyz, /metrics) when started as `serve --xds-address 0.0.0.0:18000
# --admin-address 0.0.0.0:9901`, as the Deployment does.
EXPOSE 18000 9901
ENTRYPOINT ["gammaxds"]
CMD ["--help"]
