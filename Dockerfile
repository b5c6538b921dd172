# The Airflow image of the compose stack (docker-compose.yaml): the official Airflow image with
# valohai-airflow installed from this repository, pinned by constraints.txt (the same pins as the
# tests' virtualenv, so Airflow stays at the version the provider is tested with).
#
#   docker build -t valohai-airflow/airflow:local .
#
# Building needs registry access (the base image from Docker Hub, packages from PyPI).
ARG AIRFLOW_VERSION=3.3.2
ARG PYTHON_VERSION=3.11
FROM apache/airflow:${AIRFLOW_VERSION}-python${PYTHON_VERSION}
ARG AIRFLOW_VERSION

# Only what the package build needs; the rest of the context is kept out by .dockerignore.
COPY --chown=airflow:0 pyproject.toml README.md constraints.txt /tmp/valohai-airflow/
COPY --chown=airflow:0 valohai_airflow /tmp/valohai-airflow/valohai_airflow

# As the image's own user (its virtualenv in /home/airflow/.local). Naming apache-airflow with the
# base image's version, as the image's documentation asks, keeps pip from moving Airflow itself.
# The check runs Airflow in a throwaway AIRFLOW_HOME so no airflow.cfg is baked into the image.
USER airflow
RUN pip install --no-cache-dir \
        --constraint /tmp/valohai-airflow/constraints.txt \
        "apache-airflow==${AIRFLOW_VERSION}" \
        /tmp/valohai-airflow \
    && rm -rf /tmp/valohai-airflow \
    && AIRFLOW_HOME=/tmp/airflow-check airflow providers list | grep -q '^valohai-airflow ' \
    && rm -rf /tmp/airflow-check
