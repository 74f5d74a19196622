# oO learner: one per deployment. Build from the repository root:
#   docker build -f infra/docker/learner.Dockerfile -t oo-learner .
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 OO_LEARNER_PORT=8001
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
# A fixed numeric uid, so Kubernetes can verify runAsNonRoot.
RUN pip install --no-cache-dir --no-deps . \
 && useradd --system --uid 10001 --no-create-home oo \
 && mkdir -p /app/data && chown 10001 /app/data
USER 10001
EXPOSE 8001
HEALTHCHECK --interval=10s --timeout=3s CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8001/health').status != 200)"
CMD ["oo", "learner", "--host", "0.0.0.0"]
