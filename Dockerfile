# One image for the project's processes: the engine is the default command; the alerts process
# (`python -m alerts serve`) and the console (`python -m dashboard`) run from it too.
FROM python:3.11-slim

# Extras of pyproject.toml installed beside the project: none in the image that runs in
# production. docker compose's dev profile builds a second image with INSTALL_EXTRAS=test for its
# local OIDC provider (oidc-provider-mock is a test dependency), at the version the tests use.
ARG INSTALL_EXTRAS=""

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 HOST=0.0.0.0
# Import the packages from /app, next to runbooks/ and prometheus/ that the console and the
# alerts process read by path.
ENV PYTHONPATH=/app
WORKDIR /app

COPY pyproject.toml README.md ./
COPY billing_core ./billing_core
COPY billing_engine ./billing_engine
COPY alerts ./alerts
COPY dashboard ./dashboard
COPY runbooks ./runbooks
COPY prometheus ./prometheus
# /var/lib/billing/usage-archive: retired months of raw usage (USAGE_ARCHIVE_DIR), a volume in
# compose and Kubernetes; made here so a fresh volume belongs to the app user.
RUN pip install ".${INSTALL_EXTRAS:+[$INSTALL_EXTRAS]}" && useradd --system --uid 10001 app \
    && mkdir -p /var/lib/billing/usage-archive && chown app /var/lib/billing/usage-archive
USER app

EXPOSE 8006 8007 8501
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8006/ready', timeout=2).status != 200)"
# `serve` applies migrations before it listens (one replica at a time, under an advisory lock).
CMD ["python", "-m", "billing_engine", "serve", "--host", "0.0.0.0", "--port", "8006"]
