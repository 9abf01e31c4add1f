# One image for the API, the Celery worker, beat and Flower (see docker-compose.yml).
FROM python:3.11-slim
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
ENV PYTHONPATH=/app
EXPOSE 3000
CMD ["gunicorn", "wsgi:app", "--bind", "0.0.0.0:3000", "--workers", "2", "--threads", "4"]
