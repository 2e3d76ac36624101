# Lethe: one binary over Postgres. Build: docker build -t lethe .
# Runs `lethe serve` by default; `lethe worker` and `lethe migrate` use the same image.

FROM rust:1.95-bookworm AS build
WORKDIR /src
# Dependencies first, so a source change does not rebuild them.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
 && cargo build --release --locked \
 && rm -rf src
COPY src src
COPY migrations migrations
RUN touch src/main.rs src/lib.rs && cargo build --release --locked \
 && install -D target/release/lethe /out/lethe

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin lethe
COPY --from=build /out/lethe /usr/local/bin/lethe
USER 10001:10001
ENV LETHE_LISTEN_ADDR=0.0.0.0:8080 \
    LETHE_LOG_FORMAT=json
EXPOSE 8080
# `lethe healthcheck` asks this container's /health/live (serve and worker both answer).
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 CMD ["lethe", "healthcheck"]
ENTRYPOINT ["lethe"]
CMD ["serve"]
