# token-rotator: a static binary on an empty base, running as a non-root user; it needs no
# shell, no CA store (TLS roots are bundled) and no writable root filesystem.
#
# Two ways to build it:
# - Offline, from a binary built on the host (no base image is pulled):
#       bash scripts/build-image.sh            # -> token-rotator:dev
#   which runs, in a context holding just the binary:
#       docker build --target prebuilt -t token-rotator:dev <context>
#   This stage comes first, so even the legacy builder builds nothing before it.
# - From source, where a registry is reachable (BuildKit skips the prebuilt stage):
#       docker build -t token-rotator .

FROM scratch AS prebuilt
COPY target/x86_64-unknown-linux-gnu/release/token-rotator /token-rotator
# The state directory (--state-dir /state), owned by the daemon's user: a named volume
# mounted here starts as a copy of it, so uid 65532 can write it on a read-only root.
COPY --chown=65532:65532 state /state
# The Docker socket is root:docker on the host: grant its group with --group-add / group_add.
USER 65532:65532
ENV TOKEN_ROTATOR_LISTEN=0.0.0.0:9090
EXPOSE 9090
HEALTHCHECK --interval=30s --timeout=5s --start-period=5s --retries=3 CMD ["/token-rotator", "healthcheck"]
ENTRYPOINT ["/token-rotator", "run"]

FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
RUN RUSTFLAGS='-C target-feature=+crt-static' \
    cargo build --release --locked --target x86_64-unknown-linux-gnu
RUN mkdir -m 0700 /state

FROM scratch
COPY --from=build /src/target/x86_64-unknown-linux-gnu/release/token-rotator /token-rotator
COPY --from=build --chown=65532:65532 /state /state
USER 65532:65532
ENV TOKEN_ROTATOR_LISTEN=0.0.0.0:9090
EXPOSE 9090
HEALTHCHECK --interval=30s --timeout=5s --start-period=5s --retries=3 CMD ["/token-rotator", "healthcheck"]
ENTRYPOINT ["/token-rotator", "run"]
