# oO api: stateless HTTP workers. Build from the repository root:
#   docker build -f infra/docker/api.Dockerfile -t oo-api .
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
COPY api api
COPY dashboards dashboards
COPY web web
RUN pip install --no-cache-dir --no-deps . && useradd --system oo
USER oo
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health').status != 200)"
CMD ["oo", "api", "--workers", "2"]
