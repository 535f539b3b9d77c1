# syntax=docker/dockerfile:1
# Images of the settings-sync server and of its Kubernetes operator, from
# one build of the workspace:
#   docker build --target server   -t settings-sync:0.1.0 .
#   docker build --target operator -t settings-sync-operator:0.1.0 .
#
# Both run as the distroless `nonroot` user (65532), with nothing in the
# image but the binary and the C runtime it links: no shell, no package
# manager. The operator's chart and builders assume that user and a
# read-only root filesystem.

# The toolchain rust-toolchain.toml pins.
FROM rust:1.95.0-slim-bookworm AS build
WORKDIR /src
# Only what the build reads: a `target/` directory from a local build
# never reaches the context's layers this way, with or without a
# .dockerignore.
COPY Cargo.toml Cargo.lock rust-toolchain.toml ./
COPY protocol protocol
COPY proto proto
COPY service service
COPY client client
COPY operator operator
COPY tests tests
# Cache mounts keep the registry and incremental artefacts between builds;
# the binaries are copied out of the mount so the next stage can see them.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p settings-sync -p settings-sync-operator \
    && mkdir -p /out \
    && cp target/release/settings-sync target/release/settings-sync-operator /out/

FROM gcr.io/distroless/cc-debian12:nonroot AS server
COPY --from=build /out/settings-sync /usr/local/bin/settings-sync
USER 65532:65532
EXPOSE 50051
ENTRYPOINT ["/usr/local/bin/settings-sync"]
CMD ["serve"]

FROM gcr.io/distroless/cc-debian12:nonroot AS operator
COPY --from=build /out/settings-sync-operator /usr/local/bin/settings-sync-operator
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/settings-sync-operator"]
CMD ["run"]
