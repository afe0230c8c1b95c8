# syntax=docker/dockerfile:1.7
# One image with every daikai binary: the services (daikai-ingress, daikai-auth-worker,
# daikai-contact-sync, daikai-api), the operator CLI (daikai) and the simulator (wecom-sim).
# docker-compose.yml and deploy/k8s pick one with the container's command (docs/deploy.md §2).
#
# Build:  docker build -t daikai:local .      (BuildKit: the default builder of Docker 23+)
# No database is needed to build: the queries are plain `sqlx::query` calls checked by the
# tests, not compile-time macros (so no SQLX_OFFLINE), and `sqlx::migrate!` only embeds the
# files of crates/store/migrations.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS build
WORKDIR /src
COPY . .
# The registry and the target folder live in BuildKit cache mounts: a rebuild after a source
# change recompiles the workspace crates only, never the dependencies. Every binary the
# workspace declares is built and copied out, so a new service needs no change here.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --workspace --bins \
    && mkdir -p /out \
    && find target/release -maxdepth 1 -type f -perm -u+x \
         \( -name 'daikai*' -o -name 'wecom-sim' \) -exec cp {} /out/ \; \
    && ls -l /out

FROM debian:${DEBIAN_RELEASE}-slim AS runtime
# CA certificates for WeCom's HTTPS API and amqps:// brokers; nothing else is installed. Not
# pinned to a version: the point is the distribution's current roots and security fixes.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 daikai \
    && useradd --system --uid 10001 --gid daikai --no-create-home --shell /usr/sbin/nologin daikai
COPY --from=build /out/ /usr/local/bin/
COPY deploy/docker/daikai-healthcheck /usr/local/bin/daikai-healthcheck
USER 10001:10001
ENV LOG_FORMAT=json
EXPOSE 8080 8081 8090 9090 9091
# The health check differs per service (its port and route), so docker-compose.yml and the
# Kubernetes probes name it; `daikai-healthcheck http://127.0.0.1:PORT/readyz` is the tool.
CMD ["daikai", "help"]
