"""The same load on a Dask cluster (two worker processes on loopback) gives the same tables as the local pool."""

import pytest
from helpers import ledger_rows, read_table, run_load, write_csv

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as local:
        yield local


def test_dask_and_local_pool_produce_identical_tables(tmp_path, cluster, db_url, make_settings, engine_of):
    src = tmp_path / "src"
    for part in range(6):
        write_csv(
            src / f"part-{part}" / "events.csv",
            ["id", "kind", "at", "amount"],
            [[part * 100 + i, f"kind {i % 3}", f"2024-02-{1 + i % 28:02d}", f"{i}.5"] for i in range(100)],
        )
    write_csv(
        src / "part-9" / "events.csv",
        ["id", "kind", "at", "amount"],
        [[1, "x", "2024-01-01", "n/a"], [2, "y", "oops", "1"]],
    )
    columns = ["id", "kind", "at", "amount", "_source_file"]
    engine = engine_of(db_url)
    local = run_load(make_settings, src, db_url, load_workers=2, dest_table="events")
    on_pool = read_table(engine, "events", order_by="id,_source_file", columns=columns)
    on_dask = run_load(
        make_settings,
        src,
        db_url,
        executor="dask",
        dask_scheduler_address=cluster.scheduler_address,
        dest_table="events",
        full_refresh=True,
    )
    assert on_dask.exit_code == local.exit_code == 0
    assert len(on_dask.loaded) == 7
    assert read_table(engine, "events", order_by="id,_source_file", columns=columns) == on_pool
    assert len(on_pool) == 602
    assert {r["status"] for r in ledger_rows(engine).values()} == {"loaded"}


def test_an_unreachable_scheduler_is_a_clear_error(tmp_path, make_settings):
    from processor.errors import ConfigError

    write_csv(tmp_path / "src" / "a.csv", ["id"], [[1]])
    with pytest.raises(ConfigError, match="Dask scheduler"):
        run_load(
            make_settings,
            tmp_path / "src",
            f"sqlite:///{tmp_path}/x.db",
            executor="dask",
            dask_scheduler_address="tcp://127.0.0.1:9",
        )
