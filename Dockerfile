# kgateway's container image: one gateway node per container.
#
#   docker build -t kgateway:0.1.0 .
#   docker run --rm -e KAFKA_BOOTSTRAP_SERVERS=broker:9092 -e GATEWAY_ADVERTISED_HOST=gw.example \
#       -e GATEWAY_ADMIN_API_USERS='[{"username":"ops","password":"...","admin":true}]' \
#       -p 6969-6973:6969-6973 -p 8888:8888 kgateway:0.1.0
#
# Settings are environment variables (`docker run kgateway:0.1.0 --help` lists them); arguments
# after the image name are `twistd kgateway` options.  Helm users: charts/kgateway.
#
# Ports:
#   6969-...  Kafka, one per broker: GATEWAY_PORT_START + broker id - GATEWAY_MIN_BROKERID, for
#             GATEWAY_PORT_COUNT ports (default: highest broker id - min id + 3).  EXPOSE below
#             names the first 100; publish what your brokers need.
#   8888      the admin API, /health/live and /health/ready (GATEWAY_HTTP_PORT).  It starts only
#             with GATEWAY_ADMIN_API_USERS set (from a secret, never the command line).
# Volumes (all read-only; the node writes nothing to disk):
#   /etc/kgateway/tls  PEM key and certificate for the admin API's HTTPS, e.g.
#                      GATEWAY_HTTP_TLS_KEY=/etc/kgateway/tls/tls.key,
#                      GATEWAY_HTTP_TLS_CERT=/etc/kgateway/tls/tls.crt (a kubernetes.io/tls Secret)
#   /run/kgateway/env  optional: one file per setting, named after it, for settings found at run
#                      time (the chart's init container writes GATEWAY_RACK_ID there); the
#                      environment wins over a file
# The root file system can be read-only: nothing is written but stdout.
#
# Signals: the entrypoint script execs twistd, so twistd is PID 1 and receives SIGTERM itself:
# the node leaves its gateway cluster, stops accepting, closes client connections broker by
# broker (GATEWAY_SHUTDOWN_DELAY_BETWEEN_BROKERS_MS apart) and exits 0.  Give it a stop timeout
# longer than that drain (docker stop -t, Kubernetes terminationGracePeriodSeconds).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
# Only what the wheel is built from, so an edit to tests or docs reuses the cached layers.
COPY pyproject.toml README.md ./
COPY kgateway ./kgateway
COPY twisted ./twisted
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels . \
    && python -m venv /opt/kgateway \
    && /opt/kgateway/bin/pip install --no-cache-dir /wheels/kgateway-*.whl
# Twisted caches what it finds in a plugin package beside it; write the caches now, as root,
# since the non-root node cannot (it would rescan and log about it on every start).
RUN /opt/kgateway/bin/python -c "from twisted.plugin import IPlugin, getPlugins; \
import twisted.plugins, kgateway.plugins; \
list(getPlugins(IPlugin)); list(getPlugins(IPlugin, kgateway.plugins))"

FROM ${PYTHON_IMAGE}
# Keep in step with pyproject.toml's version and charts/kgateway/Chart.yaml's appVersion
# (tests/integration/test_image.py checks all three agree).
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="kgateway" \
      org.opencontainers.image.description="A Kafka protocol gateway on Twisted: port-per-broker routing and complete address rewriting" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"

RUN groupadd --system --gid 10001 kgateway \
    && useradd --system --uid 10001 --gid kgateway --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin kgateway

COPY --from=build /opt/kgateway /opt/kgateway
COPY docker/kgateway-entrypoint /usr/local/bin/kgateway-entrypoint
COPY docker/node_zone.py /usr/local/bin/kgateway-node-zone

# No .pyc writes (the root file system may be read-only); log lines as they happen.
ENV PATH=/opt/kgateway/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

USER 10001:10001
WORKDIR /opt/kgateway
EXPOSE 6969-7068 8888
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/kgateway-entrypoint"]
CMD []
