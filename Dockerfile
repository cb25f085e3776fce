# syntax=docker/dockerfile:1
#
# incident-bot container image.
#
#   docker build -t incident-bot:0.1.0 .
#
# torch: like the Makefile, torch==2.13.0 is installed first and alone, then the project.
# Installed any other way, sentence-transformers lets pip pick a multi-GB CUDA build. This
# file names no package index: the build machine provides the CPU wheel, either
#   * in ./wheels/ of the build context (the default PIP_FIND_LINKS below points there), or
#   * at a wheelhouse URL of its own: --build-arg PIP_FIND_LINKS=<URL>.
# pip reads the PIP_FIND_LINKS build arg from the environment; the build fails if the torch it
# installed is a CUDA build. Needs BuildKit (the default builder since Docker 23).

FROM python:3.11-slim-bookworm AS builder

ARG PIP_FIND_LINKS=/wheels
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PATH=/opt/venv/bin:$PATH

RUN python -m venv /opt/venv \
    && pip install --upgrade pip

# The optional wheelhouse. BuildKit accepts a pattern that matches nothing, so a context
# without ./wheels/ still builds (pip then finds torch wherever PIP_FIND_LINKS points).
COPY wheel[s] /wheels/

# Its own layer, before any project file: source changes do not reinstall torch.
RUN pip install torch==2.13.0 \
    && python -c "import sys, torch; sys.exit('torch is a CUDA build; provide the CPU wheel' if torch.version.cuda else 0)"

WORKDIR /src
COPY pyproject.toml README.md ./
COPY bot/ bot/
COPY handlers/ handlers/
COPY rag/ rag/
COPY policies/ policies/
COPY sandbox/ sandbox/
# The constraint keeps the resolver from replacing the CPU torch installed above.
RUN echo "torch==2.13.0" > /tmp/torch-constraint.txt \
    && pip install --constraint /tmp/torch-constraint.txt . \
    && python -c "import torch; assert torch.version.cuda is None, torch.__version__" \
    && python -m rag.onnx_embed export


FROM python:3.11-slim-bookworm

# HF_HUB_OFFLINE: the embedding model ships with the image or the data volume; the bot never
# downloads at run time. Bytecode was compiled at install time and the root filesystem is
# read-only in Kubernetes, so Python must not try to write .pyc files.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    INCIDENT_BOT_DATA_DIR=/data

# uid 10001: numeric, so Kubernetes' runAsNonRoot can verify it; the home directory is the
# data volume, the only writable place besides /tmp.
RUN groupadd --system --gid 10001 incident-bot \
    && useradd --system --uid 10001 --gid 10001 --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin incident-bot \
    && mkdir -p /data \
    && chown 10001:10001 /data

COPY --from=builder /opt/venv /opt/venv

USER 10001:10001
WORKDIR /data
# A new volume copies /data's ownership (10001), so the SQLite database is writable.
VOLUME ["/data"]
EXPOSE 8080

# For plain Docker; Kubernetes ignores it and uses the Deployment's probes.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('INCIDENT_BOT_PORT', '8080') + '/healthz', timeout=4)"]

ENTRYPOINT ["incident-bot"]
CMD ["serve"]
