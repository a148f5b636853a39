# The hulykvs image (SPEC §20): `docker build -t hulykvs .` at the repository root.
# scripts/image builds it and tests the result; README "Deployment" says how to run it.

# Build: a release binary with SQLite compiled in.
FROM rust:1-bookworm AS build
WORKDIR /src
# The dependencies in a layer of their own, built against an empty crate, so
# that a change to src/ rebuilds hulykvs alone, not every crate.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src target/release/hulykvs target/release/.fingerprint/hulykvs-* \
        target/release/deps/hulykvs-* target/release/deps/libhulykvs-*
COPY sql ./sql
COPY console ./console
COPY src ./src
RUN cargo build --release --locked \
    && strip target/release/hulykvs \
    && ./target/release/hulykvs --version

# Run: Debian slim with CA certificates and the binary, as a user of its own.
FROM debian:bookworm-slim
# Kept equal to Cargo.toml's version (tests/deploy.rs checks).
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="hulykvs" \
      org.opencontainers.image.description="HTTP key-value service for the Huly platform" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="https://github.com/hcengineering/hulykvs" \
      org.opencontainers.image.licenses="EPL-2.0"
# uid 10001: above any uid a host's own users take, so a bind-mounted data
# directory is never owned by someone else by accident.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 hulykvs \
    && useradd --system --uid 10001 --gid hulykvs --home-dir /var/lib/hulykvs \
        --no-create-home --shell /usr/sbin/nologin hulykvs \
    && mkdir -p /var/lib/hulykvs \
    && chown hulykvs:hulykvs /var/lib/hulykvs
COPY --from=build /src/target/release/hulykvs /usr/local/bin/hulykvs
USER 10001:10001
WORKDIR /var/lib/hulykvs
VOLUME /var/lib/hulykvs
# The previous service's default, so a container started without it behaves
# as before (SPEC §7); `-e HULY_DB_CONNECTION=sqlite:/var/lib/hulykvs/hulykvs.db`
# keeps the embedded store in the volume.
ENV HULY_DB_CONNECTION=postgresql://root@huly.local:26257/defaultdb?sslmode=disable \
    HULY_BIND_HOST=0.0.0.0 \
    HULY_BIND_PORT=8094
EXPOSE 8094
# The binary probes itself: a slim image has no curl. A start period long
# enough for migrations that build an index on a large table.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["hulykvs", "probe", "--timeout", "4s"]
ENTRYPOINT ["hulykvs"]
CMD ["serve"]
