# One Dockerfile, two images:
#   docker build --platform=linux/amd64 --target sandbox -t jsbox-sandbox .
#   docker build --platform=linux/amd64 --target ingress -t jsbox-ingress .
# Cloud Run runs linux/amd64 only; cloudbuild.yaml and docker-compose.yml pass that platform.
#
# The builder (Debian 12 "bookworm", with gcc for rquickjs's C sources) and the runtime image
# (distroless cc on Debian 12) share one glibc release, so the binaries run as they were linked.
# Dependencies are cached by BuildKit cache mounts: the cargo registry and the target directory
# survive between builds, so a source change recompiles only the workspace crates.
#
# No `# syntax=` line: the Dockerfile frontend built into BuildKit (Docker 20.10 and later) has
# everything used here, cache mounts included, while a syntax line makes every build first pull
# docker/dockerfile from Docker Hub, which fails offline, behind a mirror of base images only,
# and in CI (tests/compose/run builds these images where there is no registry).

FROM rust:1-bookworm AS build-base
WORKDIR /src
COPY . .

FROM build-base AS build-sandbox
RUN --mount=type=cache,id=jsbox-cargo-registry,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,id=jsbox-cargo-git,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,id=jsbox-target,target=/src/target,sharing=locked \
    cargo build --release --locked -p sandbox \
    && install -D target/release/sandbox /out/sandbox

FROM build-base AS build-ingress
RUN --mount=type=cache,id=jsbox-cargo-registry,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,id=jsbox-cargo-git,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,id=jsbox-target,target=/src/target,sharing=locked \
    cargo build --release --locked -p ingress \
    && install -D target/release/ingress /out/ingress

# The private service that runs untrusted JavaScript. Listens on LISTEN_ADDR (default
# 127.0.0.1:8081); the deploy files set it.
FROM gcr.io/distroless/cc-debian12:nonroot AS sandbox
COPY --from=build-sandbox /out/sandbox /usr/local/bin/sandbox
USER 65532:65532
EXPOSE 8081
# Distroless has no shell: the binary checks its own /healthz and exits 0 or 1.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/sandbox", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/sandbox"]

# The public front door. Listens on LISTEN_ADDR, else 0.0.0.0:$PORT (Cloud Run sets PORT), so
# the image sets neither. Last stage: a plain `docker build .` builds the ingress.
FROM gcr.io/distroless/cc-debian12:nonroot AS ingress
COPY --from=build-ingress /out/ingress /usr/local/bin/ingress
USER 65532:65532
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/ingress", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/ingress"]
