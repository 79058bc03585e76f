# Vigil images: `docker build --target backend .` and `docker build --target agent .`
# The build stage runs the same pipeline as a developer: cargo xtask dist.

FROM rust:1-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends nodejs npm && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY rust-toolchain.toml ./
RUN rustup show active-toolchain || rustup toolchain install
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
RUN cargo xtask dist

FROM debian:bookworm-slim AS backend
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /var/lib/vigil vigil && mkdir -p /var/lib/vigil && chown vigil /var/lib/vigil
COPY --from=build /src/dist/vigil /usr/local/bin/vigil
COPY --from=build /src/dist/site /usr/share/vigil/site
USER vigil
ENV VIGIL_SERVER__LISTEN=0.0.0.0:8080 \
    VIGIL_STORAGE__DATA_DIR=/var/lib/vigil \
    VIGIL_UI__SITE_ROOT=/usr/share/vigil/site
VOLUME /var/lib/vigil
EXPOSE 8080
ENTRYPOINT ["vigil"]
CMD ["serve"]

# The agent: mount the host's logs read-only and a configuration over /etc/vigil/agent.toml;
# keep /var/lib/vigil-agent on a volume so that checkpoints and the disk buffer outlive the
# container. Host metrics read the container's /proc: run it with --pid=host --network=host to
# report the host's own figures.
FROM debian:bookworm-slim AS agent
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /var/lib/vigil-agent
COPY --from=build /src/dist/vigil-agent /usr/local/bin/vigil-agent
COPY config/agent.example.toml /etc/vigil/agent.toml
ENV VIGIL_AGENT_DATA_DIR=/var/lib/vigil-agent \
    VIGIL_AGENT_CONTROL__LISTEN=0.0.0.0:9465
VOLUME /var/lib/vigil-agent
EXPOSE 9465
HEALTHCHECK CMD ["vigil-agent", "--check-config", "--config", "/etc/vigil/agent.toml"]
ENTRYPOINT ["vigil-agent"]
CMD ["--config", "/etc/vigil/agent.toml"]
