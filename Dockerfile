# Roost container image (docs/install.md#container).
#
#   docker build -t roost \
#     --build-arg VERSION=$(packaging/version.sh) \
#     --build-arg COMMIT=$(git rev-parse --short=12 HEAD) \
#     --build-arg DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ) .
#   docker run -d --name roost --hostname roost1 \
#     -p 1883:1883 -p 8083:8083 -p 18083:18083 -v roost-data:/opt/roost/data roost
#
# Layout (the install-dir rule of `roost paths`, as for a tarball):
#   /opt/roost/bin/roost        the binary
#   /opt/roost/etc/roost.conf   the config (the repository's etc/roost.conf;
#                               its listeners bind 0.0.0.0 by default)
#   /opt/roost/data             the data dir, a volume, owned by user roost

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=0.0.0-dev
ARG COMMIT=unknown
ARG DATE=unknown
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT} -X main.date=${DATE}" \
      -o /out/roost ./cmd/roost

FROM debian:bookworm-slim
# A fixed uid/gid, so a bind-mounted data dir can be chown'ed to it: 1000.
RUN groupadd --system --gid 1000 roost \
 && useradd --system --uid 1000 --gid roost --home-dir /opt/roost/data \
      --no-create-home --shell /usr/sbin/nologin roost
COPY --from=build /out/roost /opt/roost/bin/roost
COPY etc/roost.conf /opt/roost/etc/roost.conf
RUN chown root:roost /opt/roost/etc/roost.conf \
 && chmod 0640 /opt/roost/etc/roost.conf \
 && install -d -m 0700 -o roost -g roost /opt/roost/data
USER roost
WORKDIR /opt/roost
VOLUME /opt/roost/data
# MQTT/TCP, MQTT/WebSocket, MQTT/TLS (when configured), REST API, cluster.
EXPOSE 1883 8083 8883 18083 4370
# ctl finds the node's socket in /opt/roost/data by the same rules as start.
HEALTHCHECK --interval=15s --timeout=10s --start-period=30s --retries=3 \
  CMD ["/opt/roost/bin/roost", "ctl", "status", "--timeout", "8s"]
# SIGTERM (docker stop) stops the node cleanly; give it time:
# docker stop --time 60, or stop_grace_period in compose.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/opt/roost/bin/roost"]
CMD ["start"]
