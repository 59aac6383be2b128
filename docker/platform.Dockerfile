# syntax=docker/dockerfile:1
# The platform image: hybridops + dagster_project (Dagster webserver, daemon, user code and run pods),
# and the MLflow tracking server and Feast feature server, which run from the same environment.
# Build from the repository root:  docker build -f docker/platform.Dockerfile -t hybridops/platform:0.1.0 .
ARG PYTHON_IMAGE=python:3.11.10-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# The runtime dependencies exactly as locked (versions and hashes, `make lock`), then the project alone.
COPY requirements/lock.txt ./requirements/lock.txt
RUN pip install --require-hashes -r requirements/lock.txt
COPY pyproject.toml README.md ./
COPY platform ./platform
COPY dagster_project ./dagster_project
RUN pip install --no-deps . && pip check && python -m compileall -q /opt/venv

FROM ${PYTHON_IMAGE}
# LightGBM needs the OpenMP runtime.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 hybridops \
 && useradd --uid 10001 --gid 10001 --home-dir /tmp --no-create-home --shell /usr/sbin/nologin hybridops
COPY --from=build /opt/venv /opt/venv
# Read-only root filesystem: no bytecode writes, HOME and caches on the /tmp emptyDir, state on /data.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    XDG_CACHE_HOME=/tmp/.cache \
    MPLCONFIGDIR=/tmp/matplotlib \
    DAGSTER_HOME=/opt/dagster/dagster_home \
    HYBRIDOPS_HOME=/data
WORKDIR /opt/dagster/app
USER 10001:10001
EXPOSE 3000 3030 5000 6566
CMD ["dagster", "api", "grpc", "-m", "dagster_project.definitions", "-h", "0.0.0.0", "-p", "3030"]
