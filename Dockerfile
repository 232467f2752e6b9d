# syntax=docker/dockerfile:1
# videobatch: the API (gunicorn), `videobatch db upgrade` and `videobatch worker` share this image.

# -- build: install videobatch and its dependencies into a virtualenv (compilers stay here) ----
FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Only needed where a dependency has no wheel for the platform; none of it reaches the runtime.
RUN apt-get update \
    && apt-get install --yes --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
# Metadata first: the dependency layer is rebuilt only when setup.cfg changes.
COPY pyproject.toml setup.cfg README.md ./
RUN mkdir videobatch && touch videobatch/__init__.py \
    && pip install --upgrade pip \
    && pip install . \
    && pip uninstall --yes videobatch
COPY videobatch ./videobatch
RUN pip install --no-deps .

# -- runtime: the virtualenv, the two entry files, and a user without privileges ---------------
FROM python:3.11-slim AS runtime

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    VIDEOBATCH_ENV=production \
    PROMETHEUS_MULTIPROC_DIR=/tmp/videobatch-metrics

RUN groupadd --system videobatch \
    && useradd --system --gid videobatch --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin videobatch

COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY wsgi.py gunicorn.conf.py ./

USER videobatch
EXPOSE 8000

# Liveness only: /healthz consults no dependency, so a database outage does not restart every
# API container at once. Readiness (/readyz) is for the load balancer.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]

CMD ["gunicorn", "wsgi:app", "-c", "gunicorn.conf.py"]
