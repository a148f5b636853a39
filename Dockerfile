# Build: a release binary with SQLite compiled in.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY sql ./sql
RUN cargo build --release --locked && strip target/release/hulykvs

# Run: a small image with CA certificates and the binary only.
FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /var/lib/hulykvs --create-home hulykvs
COPY --from=build /src/target/release/hulykvs /usr/local/bin/hulykvs
USER hulykvs
WORKDIR /var/lib/hulykvs
# The previous service's default, so a container started without it behaves as before.
ENV HULY_DB_CONNECTION=postgresql://root@huly.local:26257/defaultdb?sslmode=disable \
    HULY_BIND_HOST=0.0.0.0 \
    HULY_BIND_PORT=8094
EXPOSE 8094
ENTRYPOINT ["hulykvs"]
CMD ["serve"]
