# The FastAPI orders service (examples/fastapi-orders) for docker-compose.yml.
# Build context: examples/fastapi-orders.
FROM python:3.11-slim
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY app.py .
USER nobody
EXPOSE 8081
# JWKS_URL (gatehouse's /.well-known/jwks.json) comes from docker-compose.yml.
CMD ["python", "-m", "uvicorn", "app:app", "--host", "0.0.0.0", "--port", "8081", \
     "--timeout-graceful-shutdown", "5", "--no-server-header"]
