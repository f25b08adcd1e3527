# The trainer image: Debian bookworm with unixODBC and the drivers trainer is tested with
# (mdbtools for MS Access files, psqlODBC, FreeTDS for SQL Server), the trainer binary, the SQL
# layers, the config and the bundled sample. `make docker` builds it and trains the sample inside
# it; docs/container.md has the volumes, the sizing and how to build without a registry.
#
# BASE    the bookworm image to start from: debian:bookworm-slim from a registry, or
#         localhost/bookworm:base made by scripts/bookworm-base where no registry is reachable.
# BINARY  `compiled`: build trainer in the image (Rust from bookworm-security's rustc-web);
#         `prebuilt`: copy build/trainer from the context, a binary built on a bookworm host
#         (what CI does: it has just built and tested that very binary).
ARG BASE=docker.io/library/debian:bookworm-slim
ARG BINARY=compiled

FROM ${BASE} AS compiled
# The toolchain is whatever bookworm-security ships (rustc-web >= 1.94 is what Cargo.lock needs):
# pinning a security package's version would pin its holes too.
# hadolint ignore=DL3008
RUN echo 'deb http://deb.debian.org/debian-security bookworm-security main' \
        > /etc/apt/sources.list.d/bookworm-security.list \
    && apt-get update \
    && apt-get install -y --no-install-recommends rustc-web cargo-web gcc libc6-dev \
        unixodbc-dev pkg-config ca-certificates binutils \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
RUN cargo build --release --locked && strip -o /trainer target/release/trainer

FROM ${BASE} AS prebuilt
COPY build/trainer /trainer

FROM ${BINARY} AS binary

FROM ${BASE}
# Debian's driver packages register their drivers in /etc/odbcinst.ini (`odbcinst -q -d` lists
# MDBTools, PostgreSQL ANSI/Unicode and FreeTDS), so nothing is appended here. Versions are
# bookworm's: the image follows the distribution's security updates.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends unixodbc odbc-mdbtools odbc-postgresql tdsodbc \
        ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /app --no-create-home trainer \
    && mkdir -p /app/state /app/logs \
    && chown trainer:trainer /app/state /app/logs
COPY --from=binary /trainer /usr/local/bin/trainer
WORKDIR /app
COPY config ./config
COPY sql ./sql
COPY data/sample ./data/sample
# trainer swaps the model folder in by renaming it, which a mount point cannot be: the model
# lives in a folder of the /app/state volume, not in a volume of its own.
RUN sed -i -e 's|^  models_dir: models$|  models_dir: /app/state/models|' \
        -e 's|^  logs_dir: logs$|  logs_dir: /app/logs|' config/trainer.yml \
    && grep -q '^  models_dir: /app/state/models$' config/trainer.yml \
    && grep -q '^  logs_dir: /app/logs$' config/trainer.yml
USER 10001:10001
VOLUME ["/app/state", "/app/logs"]
ENTRYPOINT ["trainer"]
CMD ["run", "--config", "config/trainer.yml"]
