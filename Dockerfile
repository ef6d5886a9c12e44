# bids_dfc container image: the BIDS-App and its Python dependencies on Debian bookworm.
#
# Online build (PyPI and a registry reachable):
#     docker build -t bids_dfc:0.1.0 .
# Air-gapped build (no registry, no PyPI: a local base image and a wheelhouse in the context):
#     docker/build-base.sh                       # localhost/debian:bookworm-slim via debootstrap
#     docker/build-wheelhouse.sh docker/wheelhouse
#     podman build --pull=never --build-arg BASE_IMAGE=localhost/debian:bookworm-slim \
#         --build-arg FETCH_TEMPLATES=0 -t bids_dfc:0.1.0 .
# See docs/docker.md. No USER is set: the image runs as any UID (docker --user, Apptainer).

# Standard public base; override with a locally made one where no registry is reachable.
ARG BASE_IMAGE=docker.io/library/debian:bookworm-slim

# ---------------------------------------------------------------------------------------
# python: the interpreter shared by every stage (same path, so the venv can be copied).
FROM ${BASE_IMAGE} AS python
ARG PYTHON_DEB_VERSION=3.11.2-1+b1
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        "python3=${PYTHON_DEB_VERSION}" \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log

# ---------------------------------------------------------------------------------------
# deps: the virtual environment with the pinned dependencies (cached across source changes).
FROM python AS deps
ARG PYTHON_DEB_VERSION=3.11.2-1+b1
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        "python3-venv=${PYTHON_DEB_VERSION}" \
    && rm -rf /var/lib/apt/lists/*
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python3 -m venv /opt/bids_dfc
# The lock and, for air-gapped builds, the wheels of docker/wheelhouse/ (the glob lets the
# directory be absent: then pip uses the package index).
COPY docker/requirements.lock docker/wheelhous[e] /tmp/build/
RUN set -e; \
    if ls /tmp/build/*.whl >/dev/null 2>&1; then \
        echo "Installing from the wheelhouse (no index)"; \
        set -- --no-index --find-links /tmp/build; \
    else \
        echo "No wheelhouse: installing the pinned versions from the package index"; \
    fi; \
    /opt/bids_dfc/bin/pip install "$@" --require-virtualenv -r /tmp/build/requirements.lock; \
    echo "$@" > /tmp/build/pip-args; \
    find /opt/bids_dfc/lib -depth -type d \( -name tests -o -name test \) \
        -path '*/site-packages/*' -exec rm -rf {} +

# ---------------------------------------------------------------------------------------
# builder: bids_dfc's own wheel, checked against the pinned environment.
FROM deps AS builder
COPY pyproject.toml setup.cfg README.m[d] LICENS[E] /tmp/build/src/
COPY bids_dfc /tmp/build/src/bids_dfc
# Build offline with the pinned setuptools, install it over the dependencies (no index,
# whatever the dependency source was) and prove the requirement set is complete.
RUN /opt/bids_dfc/bin/pip wheel --no-deps --no-index --no-build-isolation -w /tmp/dist \
        /tmp/build/src \
    && /opt/bids_dfc/bin/pip install --no-index --no-deps /tmp/dist/*.whl \
    && /opt/bids_dfc/bin/pip check

# ---------------------------------------------------------------------------------------
# templates: TemplateFlow's index plus the MNI152 2 mm files when the build has network.
FROM deps AS templates
# auto: try to download, else use nilearn's bundled MNI152 2009a; 1: must download; 0: skip.
ARG FETCH_TEMPLATES=auto
COPY docker/fetch_templates.py /tmp/build/fetch_templates.py
RUN TEMPLATEFLOW_HOME=/opt/templateflow FETCH_TEMPLATES="${FETCH_TEMPLATES}" \
        /opt/bids_dfc/bin/python /tmp/build/fetch_templates.py \
    && chmod -R a+rX /opt/templateflow

# ---------------------------------------------------------------------------------------
# runtime: interpreter + venv + templates; nothing else.
FROM python AS runtime
ARG BASE_IMAGE
# The large, rarely changing environment and templates first; a source change only adds the
# small layer with bids_dfc's wheel.
COPY --from=deps /opt/bids_dfc /opt/bids_dfc
COPY --from=templates /opt/templateflow /opt/templateflow
COPY --from=builder /tmp/dist /tmp/dist
RUN /opt/bids_dfc/bin/pip install --no-index --no-deps --no-compile /tmp/dist/*.whl \
    && /opt/bids_dfc/bin/python -m compileall -q /opt/bids_dfc/lib/python3*/site-packages/bids_dfc \
    && /opt/bids_dfc/bin/pip uninstall -y setuptools wheel \
    && rm -rf /tmp/dist

# Any UID may run the image, with a read-only root and a home that may not be writable:
# every cache points into /tmp (writable under docker --read-only, podman and Apptainer),
# TemplateFlow reads the files baked in above and never updates, nipype never phones home.
ENV PATH=/opt/bids_dfc/bin:${PATH} \
    HOME=/tmp \
    XDG_CACHE_HOME=/tmp/.cache \
    MPLCONFIGDIR=/tmp/.cache/matplotlib \
    MPLBACKEND=Agg \
    NIPYPE_CONFIG_DIR=/tmp/.cache/nipype \
    NO_ET=1 \
    NIPYPE_NO_ET=1 \
    TEMPLATEFLOW_HOME=/opt/templateflow \
    TEMPLATEFLOW_AUTOUPDATE=0 \
    NILEARN_DATA=/tmp/.cache/nilearn_data \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    LC_ALL=C.UTF-8 \
    LANG=C.UTF-8

# Smoke test: the package and the heavy libraries import, and the CLI starts.
RUN python -c "import bids_dfc, ants, nipype, nilearn, bids, arch, statsmodels, templateflow" \
    && bids-dfc --version

ARG VERSION=0.1.0
ARG VCS_REF=unknown
ARG BUILD_DATE=unknown
LABEL org.opencontainers.image.title="bids_dfc" \
      org.opencontainers.image.description="BIDS-App: resting-state fMRI preprocessing, DMN-DeS dynamic conditional correlation and group statistics" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${VCS_REF}" \
      org.opencontainers.image.created="${BUILD_DATE}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="${BASE_IMAGE}" \
      org.opencontainers.image.documentation="docs/docker.md"

WORKDIR /tmp
ENTRYPOINT ["bids-dfc"]
CMD ["--help"]
