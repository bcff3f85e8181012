"""Runs inside a peer's own virtualenv: one load, the way that library's guide shows it.

    python inside.py pandas FILE URL SCHEMA TABLE
    python inside.py dlt FILE DESTINATION CREDENTIALS DATASET TABLE WORKDIR

Standard library and the peer only: the project is not importable here.
"""

from __future__ import annotations

import sys
from pathlib import Path


def pandas_load(path: str, url: str, schema: str, table: str) -> None:
    import pandas as pd
    from sqlalchemy import create_engine

    engine = create_engine(url)
    pd.read_csv(path).to_sql(table, engine, schema=schema or None, index=False, if_exists="replace")
    engine.dispose()


def dlt_load(path: str, destination: str, credentials: str, dataset: str, table: str, workdir: str) -> None:
    import dlt
    from dlt.sources.filesystem import filesystem, read_csv

    file = Path(path)
    target = (
        dlt.destinations.postgres(credentials)
        if destination == "postgres"
        else dlt.destinations.sqlalchemy(credentials)
    )
    pipeline = dlt.pipeline(
        pipeline_name=f"bench_peers_{table}", destination=target, dataset_name=dataset, pipelines_dir=workdir
    )
    files = filesystem(bucket_url=file.parent.as_uri(), file_glob=file.name)
    info = pipeline.run(files | read_csv(), table_name=table, write_disposition="replace")
    info.raise_on_failed_jobs()


if __name__ == "__main__":
    tool, *args = sys.argv[1:]
    {"pandas": pandas_load, "dlt": dlt_load}[tool](*args)
