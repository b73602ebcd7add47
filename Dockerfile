# crawler: scheduled crawls and the HTTP server in one process.
#   docker build -t crawler .
#   docker run -p 8080:8080 -v crawler-data:/data crawler
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    CRAWLER_CONFIG=/app/feeds.yaml \
    CRAWLER_DATABASE=sqlite:////data/crawler.db

WORKDIR /app
COPY pyproject.toml README.md ./
COPY crawler ./crawler
COPY storage ./storage
RUN pip install --no-cache-dir . \
    && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin crawler \
    && mkdir -p /data && chown crawler /data
COPY feeds.yaml ./feeds.yaml

USER crawler
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4).status != 200)"]
# SIGTERM (docker stop) lets the running crawl finish its sources, then exits 0.
STOPSIGNAL SIGTERM
CMD ["crawler", "run", "--host", "0.0.0.0", "--port", "8080"]
