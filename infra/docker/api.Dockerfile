# oO api: stateless HTTP workers. Build from the repository root:
#   docker build -f infra/docker/api.Dockerfile -t oo-api .
# It binds 0.0.0.0, which only sign-in mode allows: run it with OO_PUBLIC_URL, OO_TOKEN_KEYS and a
# provider (docs/operations.md, "Sign-in mode"); without them it exits at start naming the gap.
# Runtime is Python only: web/ is static files served as they are (no Node build step).
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 OO_HOST=0.0.0.0 OO_PORT=8000
COPY requirements.lock pyproject.toml README.md ./
RUN pip install --no-cache-dir -r requirements.lock
COPY bandit bandit
COPY policies policies
COPY experiments experiments
COPY rewards rewards
COPY integrations integrations
COPY notifier notifier
COPY api api
COPY dashboards dashboards
COPY web web
# A fixed numeric uid, so Kubernetes can verify runAsNonRoot.
RUN pip install --no-cache-dir --no-deps . \
 && useradd --system --uid 10001 --no-create-home oo \
 && mkdir -p /app/data && chown 10001 /app/data
USER 10001
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health').status != 200)"
# One worker per container: scale with replicas so Prometheus scrapes every process.
CMD ["oo", "api", "--workers", "1"]
