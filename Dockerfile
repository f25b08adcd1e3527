# Multi-stage: build with the Rust toolchain, run in a slim Debian with unixODBC.
FROM rust:1.95-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends unixodbc-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
RUN cargo build --release --locked

FROM debian:bookworm-slim
# unixODBC plus the drivers trainer is tested with: mdbtools (MS Access files), psqlODBC
# (PostgreSQL), FreeTDS (SQL Server). Microsoft's "ODBC Driver 18 for SQL Server" is not in
# Debian; add Microsoft's apt repository to use it instead of FreeTDS.
RUN apt-get update && apt-get install -y --no-install-recommends unixodbc ca-certificates \
      odbc-mdbtools odbc-postgresql tdsodbc \
    && rm -rf /var/lib/apt/lists/* \
    && printf '[FreeTDS]\nDescription=FreeTDS\nDriver=/usr/lib/x86_64-linux-gnu/odbc/libtdsodbc.so\n' >> /etc/odbcinst.ini
COPY --from=build /src/target/release/trainer /usr/local/bin/trainer
WORKDIR /work
COPY config ./config
COPY sql ./sql
COPY data/sample ./data/sample
ENTRYPOINT ["trainer"]
CMD ["run", "--config", "config/trainer.yml"]
