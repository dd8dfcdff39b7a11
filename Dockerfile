# syntax=docker/dockerfile:1.7
# budget-worker for ECS: the Java launcher (KCL 3.x MultiLangDaemon + DynamoDB Streams Kinesis
# Adapter 2.x) spawning `budget-worker kcl-processor` per shard.

# --- 1. the launcher jar: the same Maven command as `make setup` (JUnit tests, shaded jar) ----
FROM maven:3.9.9-eclipse-temurin-17 AS launcher
WORKDIR /build
COPY launcher/pom.xml ./
RUN mvn -q -B dependency:go-offline
COPY launcher/src ./src
RUN mvn -q -B package

# --- 2. the Python worker in a virtualenv, exactly as locked (uv.lock, as `make setup`) -------
FROM python:3.11.11-slim-bookworm AS python
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 UV_PROJECT_ENVIRONMENT=/opt/venv
WORKDIR /src
COPY scripts/uv-requirements.txt ./scripts/
RUN python -m venv /opt/tools \
    && /opt/tools/bin/pip install --require-hashes -r scripts/uv-requirements.txt
COPY pyproject.toml uv.lock README.md ./
COPY worker ./worker
# The `kcl` extra is amazon-kclpy's normal install (its build fetches the KCL jars).
# --compile-bytecode: the runtime user cannot write __pycache__ into /opt/venv, so without it
# every process (the supervisor, and a kcl-processor per shard, again at each shard roll-over)
# compiles botocore & co. from source: about 3x the start-up (benchmarks/results/startup.json).
RUN /opt/tools/bin/uv sync --locked --no-editable --extra kcl --compile-bytecode

# --- 3. slim runtime: Python + a headless JRE, non-root ---------------------------------------
FROM python:3.11.11-slim-bookworm
RUN apt-get update \
    && apt-get install -y --no-install-recommends openjdk-17-jre-headless=17.* \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --no-create-home worker
COPY --from=python /opt/venv /opt/venv
COPY --from=launcher /build/target/budget-worker-launcher.jar /opt/budget-worker/
COPY properties /opt/budget-worker/properties
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    BUDGET_LOG_FORMAT=json \
    BUDGET_KCL_LAUNCHER_JAR=/opt/budget-worker/budget-worker-launcher.jar \
    BUDGET_KCL_PROPERTIES=/opt/budget-worker/properties/production.properties \
    BUDGET_HEARTBEAT_FILE=/tmp/budget-worker.heartbeat
USER 10001:10001
# Healthy while the supervisor sees the KCL daemon alive (it refreshes the heartbeat file).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["budget-worker", "health", "--max-age", "60"]
ENTRYPOINT ["budget-worker"]
CMD ["run", "--driver", "kcl"]
