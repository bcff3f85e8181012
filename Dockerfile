# The quarterly, ephemeral run: configuration only through the environment, e.g.
#   docker build -t processor .                                 the default job: CSV files -> SQL -> Pipedrive
#   docker build --build-arg EXTRAS=s3,dask -t processor:s3 .   with S3 sources and the Dask executor
#   docker run --rm --env-file processor.env -v /data/epc:/data:ro processor
FROM python:3.11-slim

# Optional extras, comma-separated: s3, http, dask, pandas (see pyproject.toml). None by default.
ARG EXTRAS=""

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PROCESSOR_IN_CONTAINER=1

# Only what the job needs: the package with its default dependencies (and the extras asked for),
# at the versions requirements.txt pins.
COPY requirements.txt pyproject.toml README.md /tmp/src/
COPY processor/ /tmp/src/processor/
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --constraint /tmp/src/requirements.txt "/tmp/src${EXTRAS:+[$EXTRAS]}" \
 && rm -rf /tmp/src
ENV PATH="/opt/venv/bin:$PATH"

RUN useradd --create-home --uid 10001 processor
WORKDIR /app
# /app/db: where a SQLite destination outlives the container, on a volume (see the README)
RUN mkdir -p /app/db && chown -R processor:processor /app
USER processor

CMD ["processor"]
