# One image for the API, the Celery worker, beat and Flower (see docker-compose.yml).
FROM python:3.11-slim
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
ENV PYTHONPATH=/app \
    PROMETHEUS_MULTIPROC_DIR=/tmp/prometheus
RUN mkdir -p /tmp/prometheus
EXPOSE 3000
# The API on $PORT (default 3000); `sh scripts/serve.sh worker|beat|migrate` for
# the other roles (Procfile, railway.json).
CMD ["sh", "scripts/serve.sh", "api"]
