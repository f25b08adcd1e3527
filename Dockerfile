# Multi-stage: build with the Rust toolchain, run in a slim Debian with unixODBC.
FROM rust:1.95-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends unixodbc-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
RUN cargo build --release --locked

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends unixodbc ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/trainer /usr/local/bin/trainer
WORKDIR /work
COPY config ./config
COPY sql ./sql
COPY data/sample ./data/sample
ENTRYPOINT ["trainer"]
CMD ["run", "--config", "config/trainer.yml"]
