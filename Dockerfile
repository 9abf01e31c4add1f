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
CMD ["gunicorn", "wsgi:app", "-c", "config/gunicorn.conf.py", "--bind", "0.0.0.0:3000", \
     "--workers", "2", "--threads", "4"]
