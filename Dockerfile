# The quarterly, ephemeral run: configuration only through the environment, e.g.
#   docker run --rm --env-file processor.env -v /data/epc:/data:ro processor
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

COPY requirements.txt /tmp/requirements.txt
RUN python -m venv /opt/venv && /opt/venv/bin/pip install -r /tmp/requirements.txt
ENV PATH="/opt/venv/bin:$PATH"

RUN useradd --create-home --uid 10001 processor
WORKDIR /app
COPY processor/ processor/
COPY index.py .
RUN chown processor:processor /app
USER processor

CMD ["python", "index.py"]
