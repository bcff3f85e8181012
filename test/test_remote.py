"""Remote sources: S3 prefixes, HTTP base URLs and URL lists, against real servers on loopback.

The S3 server is moto in server mode, one per test session (fsspec keeps one S3 client per process,
bound to the endpoint it first saw); every test gets a bucket of its own. The HTTP server serves a
temporary folder with ETag, Last-Modified and Range support. Both log the requests they receive, so
the tests can tell whether a file's content was downloaded.
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import os
import uuid
import zipfile
from decimal import Decimal

import boto3
import pytest
from helpers import ledger_rows, read_table, write_bytes
from remote_servers import FileServer, S3Server
from test_cli import run_index

from processor.errors import ConfigError, SourceError
from processor.find import discover, fingerprints, remote, roots
from processor.staging.files import open_binary
from processor.staging.loader import load

CERTS = b"id,energy\n1,A\n2,B\n"


@pytest.fixture(scope="session")
def s3_server():
    """moto's S3 on 127.0.0.1, and the AWS environment pointing at it (for this process and its children)."""
    server = S3Server()
    server.start()
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": server.url,
    }
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        server.env = env
        yield server
    server.stop()


@pytest.fixture
def bucket(s3_server):
    """put(key, bytes) into a fresh bucket; `bucket.name`, `bucket.log` (requests), `bucket.faults`."""
    client = boto3.client("s3", endpoint_url=s3_server.url)
    name = f"b-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name)

    class Bucket:
        def put(self, key: str, data: bytes) -> None:
            client.put_object(Bucket=name, Key=key, Body=data)

    handle = Bucket()
    handle.name, handle.log, handle.server = name, s3_server.log, s3_server
    s3_server.log.clear()
    yield handle
    listed = client.list_objects_v2(Bucket=name).get("Contents", [])
    for item in listed:
        client.delete_object(Bucket=name, Key=item["Key"])
    client.delete_bucket(Bucket=name)


@pytest.fixture
def http(tmp_path):
    """A FileServer serving tmp_path/'www'."""
    root = tmp_path / "www"
    root.mkdir()
    with FileServer(root) as server:
        yield server


def zipped(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def staged(engine, table: str) -> list[tuple]:
    """(path, id, energy) of every row, its path found through the ledger entry whose lineage it carries."""
    paths = {r["lineage"]: r["path"] for r in ledger_rows(engine).values()}
    rows = read_table(engine, table, order_by="_source_file,id")
    return sorted((paths[r["_source_file"]], r["id"], r["energy"]) for r in rows)


def object_gets(log, bucket_name: str) -> list[str]:
    """Paths of GETs of object content (listings carry a query string)."""
    return [r.path for r in log.requests if r.method == "GET" and r.path.startswith(f"/{bucket_name}/")]


# ---------------------------------------------------------------- naming (pure)


@pytest.mark.parametrize(
    "root, kind, urls",
    [
        ("/data/epc", "local", ()),
        ("data/a,b", "local", ()),
        ("s3://bucket/q1", "s3", ("s3://bucket/q1",)),
        ("https://example.org/dumps/", "http", ("https://example.org/dumps/",)),
        ("https://h/a.csv, s3://b/k.csv", "urls", ("https://h/a.csv", "s3://b/k.csv")),
        ("https://h/a.csv,", "urls", ("https://h/a.csv",)),
    ],
    ids=["folder", "folder-with-comma", "s3-prefix", "http-base", "url-list", "one-url"],
)
def test_the_root_says_what_kind_of_source_it_is(root, kind, urls):
    parsed = roots.parse_root(root)
    assert (parsed.kind, parsed.urls) == (kind, urls)


@pytest.mark.parametrize("root", ["ftp://host/x.csv", "https://h/a.csv,/local/b.csv", "gs://bucket/p"])
def test_an_unreadable_scheme_is_a_config_error(root):
    with pytest.raises(ConfigError, match="SRC_DATA_FOLDER"):
        roots.parse_root(root)


def test_public_urls_carry_no_credentials_and_secrets_are_listed():
    url = "https://loader:pa55word@files.example.org:8443/q1/a.csv?X-Amz-Signature=abc123#frag"
    assert roots.public_url(url) == "https://files.example.org:8443/q1/a.csv"
    assert roots.url_secrets(f"{url}, s3://b/k.csv") == ["pa55word", "X-Amz-Signature=abc123"]
    assert roots.file_url("https://h/base/?token=t0k", "sub dir/a.csv") == "https://h/base/sub%20dir/a.csv?token=t0k"


@pytest.mark.parametrize(
    "info, expected",
    [
        ({"ETag": '"abc"', "size": 10}, "etag:abc:10"),
        ({"ETag": 'W/"abc"', "size": 10, "Last-Modified": "Sat, 21 Nov 2026 10:00:00 GMT"}, 'etag:W/"abc:10'),
        ({"Last-Modified": "Sat, 21 Nov 2026 10:00:00 GMT", "size": 10}, "modified:1795255200.0:10"),
        ({"size": 10}, None),
    ],
    ids=["etag", "weak-etag", "last-modified", "nothing"],
)
def test_fingerprints_come_from_etag_then_last_modified(info, expected):
    assert fingerprints.fingerprint(info) == expected


def test_a_very_long_etag_is_hashed_to_fit_the_ledger():
    value = fingerprints.fingerprint({"ETag": "x" * 300, "size": 1})
    assert value.startswith("etag-sha256:") and len(value) <= fingerprints.FINGERPRINT_LENGTH


@pytest.mark.parametrize("status, retry", [(500, True), (503, True), (429, True), (404, False), (403, False)], ids=str)
def test_only_failures_that_may_pass_are_retried(status, retry):
    error = OSError("boom")
    error.status = status
    assert remote.transient(error) is retry


def test_missing_credentials_are_not_retried():
    from botocore.exceptions import NoCredentialsError

    assert remote.transient(ConnectionResetError()) is True
    assert remote.transient(NoCredentialsError()) is False


# ---------------------------------------------------------------- S3


def test_an_s3_prefix_is_globbed_like_a_folder(bucket, db_url, make_settings, engine_of):
    bucket.put("q1/a/certificates.csv", CERTS)
    bucket.put("q1/b/certificates.csv.gz", gzip.compress(b"id,energy\n3,C\n"))
    bucket.put("q1/c/dump.zip", zipped({"x/certificates.csv": b"id,energy\n4,D\n", "x/readme.txt": b"hi"}))
    bucket.put("q1/.git/certificates.csv", b"id,energy\n99,hidden\n")
    bucket.put("q1/d/certificates.csv", b"id,energy\n5,E\n")
    bucket.put("q1/d/~$certificates.csv", b"id,energy\n98,temporary\n")
    bucket.put("q1/notes.txt", b"not a csv")
    bucket.put("q10/certificates.csv", b"id,energy\n97,next-door prefix\n")
    settings = make_settings(
        src_data_folder=f"s3://{bucket.name}/q1/", src_file_name=("certificates.csv",), dest_sql=db_url
    )
    report = load(settings.replace(dest_table="certs"))
    assert report.exit_code == 0, [f.error for f in report.files]
    assert staged(engine_of(db_url), "certs") == [
        ("a/certificates.csv", 1, "A"),
        ("a/certificates.csv", 2, "B"),
        ("b/certificates.csv.gz", 3, "C"),
        ("c/dump.zip/x/certificates.csv", 4, "D"),
        ("d/certificates.csv", 5, "E"),
    ]
    ledger = ledger_rows(engine_of(db_url))
    assert ledger["a/certificates.csv"]["content_hash"].startswith("etag:")
    assert ledger["c/dump.zip/x/certificates.csv"]["content_hash"].startswith("zip-crc32:")


def test_unchanged_s3_objects_are_skipped_without_a_download_and_a_changed_one_is_reloaded(
    bucket, make_settings, engine_of, tmp_path
):
    url = f"sqlite:///{tmp_path / 's3.db'}"
    bucket.put("p/a/certificates.csv", CERTS)
    bucket.put("p/b/certificates.csv", b"id,energy\n3,C\n")
    settings = make_settings(src_data_folder=f"s3://{bucket.name}/p", dest_sql=url, dest_table="certs")
    assert load(settings).exit_code == 0
    assert object_gets(bucket.log, bucket.name)  # the first run downloaded them

    bucket.log.clear()
    again = load(settings)
    assert [f.status for f in again.files] == ["skipped", "skipped"]
    assert object_gets(bucket.log, bucket.name) == []

    bucket.put("p/b/certificates.csv", b"id,energy\n3,C+\n4,D\n")
    bucket.log.clear()
    changed = load(settings)
    assert {f.path: f.status for f in changed.files} == {
        "a/certificates.csv": "skipped",
        "b/certificates.csv": "loaded",
    }
    assert set(object_gets(bucket.log, bucket.name)) == {f"/{bucket.name}/p/b/certificates.csv"}
    assert staged(engine_of(url), "certs") == [
        ("a/certificates.csv", 1, "A"),
        ("a/certificates.csv", 2, "B"),
        ("b/certificates.csv", 3, "C+"),
        ("b/certificates.csv", 4, "D"),
    ]


def test_a_missing_bucket_or_empty_prefix_is_a_source_error(bucket):
    with pytest.raises(SourceError, match="bucket does not exist"):
        discover(f"s3://no-such-{bucket.name}/q1", ("*.csv",), retries=0)
    with pytest.raises(SourceError, match="holds no files"):
        discover(f"s3://{bucket.name}/nothing-here", ("*.csv",), retries=0)


# ---------------------------------------------------------------- HTTP


def test_an_http_base_url_loads_the_files_named_in_src_file_name(http, db_url, make_settings, engine_of):
    write_bytes(http.root / "dumps" / "raw_customers.csv", b"id,name\n1,Ann\n2,Bob\n")
    write_bytes(http.root / "dumps" / "q1" / "raw_orders.csv.bz2", bz2.compress(b"id,customer_id\n10,1\n11,2\n"))
    payments = zipped({"raw_payments.csv": b"id,amount\n7,2500.5\n", "readme.txt": b"not data"})
    write_bytes(http.root / "dumps" / "q1" / "payments.zip", payments)
    settings = make_settings(
        src_data_folder=f"{http.url}/dumps/",
        src_file_name=("raw_customers.csv", "q1/raw_orders.csv.bz2", "q1/payments.zip"),
    )
    report = load(settings.replace(dest_sql=db_url, load_workers=2))  # worker processes open the URLs
    assert report.exit_code == 0, [f.error for f in report.files]
    engine = engine_of(db_url)
    assert read_table(engine, "raw_customers", order_by="id") == [
        {"id": 1, "name": "Ann", "_source_file": f"{http.url}/dumps/raw_customers.csv"},
        {"id": 2, "name": "Bob", "_source_file": f"{http.url}/dumps/raw_customers.csv"},
    ]
    orders = read_table(engine, "raw_orders", order_by="id", columns=["id", "customer_id", "_source_file"])
    assert orders == [
        {"id": 10, "customer_id": 1, "_source_file": f"{http.url}/dumps/q1/raw_orders.csv.bz2"},
        {"id": 11, "customer_id": 2, "_source_file": f"{http.url}/dumps/q1/raw_orders.csv.bz2"},
    ]
    assert read_table(engine, "raw_payments", columns=["id", "amount", "_source_file"]) == [
        {"id": 7, "amount": Decimal("2500.5"), "_source_file": f"{http.url}/dumps/q1/payments.zip/raw_payments.csv"}
    ]
    assert sorted(f.path for f in report.files) == [
        "q1/payments.zip/raw_payments.csv",
        "q1/raw_orders.csv.bz2",
        "raw_customers.csv",
    ]


def test_http_cannot_be_globbed_and_missing_files_are_named(http):
    with pytest.raises(ConfigError, match="cannot be listed"):
        discover(http.url, ("*.csv",))
    with pytest.raises(SourceError, match="none of a.csv, b.csv exists under"):
        discover(http.url, ("a.csv", "b.csv"))
    with pytest.raises(SourceError, match="none of the URLs in SRC_DATA_FOLDER exists: http://127.0.0.1"):
        discover(f"{http.url}/a.csv,", ("*.csv",))


def test_a_list_of_urls_loads_each_file_under_its_public_url(http, bucket, make_settings, engine_of, tmp_path):
    write_bytes(http.root / "a" / "certificates.csv", CERTS)
    bucket.put("deep/certificates.csv", b"id,energy\n3,C\n")
    port = http.server_address[1]
    secret_url = f"http://loader:pa55word@127.0.0.1:{port}/a/certificates.csv?token=s1gnature"
    url = f"sqlite:///{tmp_path / 'list.db'}"
    settings = make_settings(
        src_data_folder=f"{secret_url}, s3://{bucket.name}/deep/certificates.csv",
        dest_sql=url,
        dest_table="certs",
    )
    report = load(settings)
    assert report.exit_code == 0, [f.error for f in report.files]
    public = f"http://127.0.0.1:{port}/a/certificates.csv"
    assert staged(engine_of(url), "certs") == [
        (public, 1, "A"),
        (public, 2, "B"),
        (f"s3://{bucket.name}/deep/certificates.csv", 3, "C"),
    ]
    assert "pa55word" not in json.dumps(read_table(engine_of(url), "_processor_files"))
    assert {r.path for r in http.log.requests} == {"/a/certificates.csv"}


@pytest.mark.parametrize("etags", [True, False], ids=["etag", "last-modified"])
def test_unchanged_http_files_are_skipped_without_a_download(etags, http, make_settings, engine_of, tmp_path):
    http.etags = etags
    write_bytes(http.root / "a.csv", b"id,energy\n1,A\n")
    write_bytes(http.root / "b.csv", b"id,energy\n2,B\n")
    url = f"sqlite:///{tmp_path / 'http.db'}"
    settings = make_settings(src_data_folder=http.url, src_file_name=("a.csv", "b.csv"), dest_sql=url, dest_table="t")
    assert load(settings).exit_code == 0
    http.log.clear()
    assert [f.status for f in load(settings).files] == ["skipped", "skipped"]
    assert http.log.gets() == 0 and http.log.count()[("HEAD", "/a.csv")] == 1

    write_bytes(http.root / "b.csv", b"id,energy\n2,B+\n3,C\n")
    os.utime(http.root / "b.csv", (2_000_000_000, 2_000_000_000))  # a new Last-Modified
    http.log.clear()
    changed = load(settings)
    assert {f.path: f.status for f in changed.files} == {"a.csv": "skipped", "b.csv": "loaded"}
    assert http.log.gets("/a.csv") == 0 and http.log.gets("/b.csv") > 0
    assert staged(engine_of(url), "t") == [("a.csv", 1, "A"), ("b.csv", 2, "B+"), ("b.csv", 3, "C")]


def test_a_dropped_download_resumes_and_loads_the_whole_file(http, make_settings, engine_of, tmp_path):
    rows = [(i, f"value {i}") for i in range(60_000)]
    write_bytes(http.root / "big.csv", ("id,energy\n" + "".join(f"{i},{v}\n" for i, v in rows)).encode())
    http.faults.fail("/big.csv", 2, how="drop")
    url = f"sqlite:///{tmp_path / 'drop.db'}"
    report = load(make_settings(src_data_folder=http.url, src_file_name=("big.csv",), dest_sql=url))
    assert report.exit_code == 0, [f.error for f in report.files]
    loaded = read_table(engine_of(url), "big", order_by="id", columns=["id", "energy"])
    assert [(r["id"], r["energy"]) for r in loaded] == rows


def test_a_download_that_keeps_failing_is_recorded_failed_and_the_others_load(http, make_settings, engine_of, tmp_path):
    write_bytes(http.root / "good.csv", CERTS)
    write_bytes(http.root / "broken.csv", b"id,energy\n9,Z\n")
    http.faults.fail("/broken.csv", 10)
    url = f"sqlite:///{tmp_path / 'fail.db'}"
    settings = make_settings(
        src_data_folder=http.url, src_file_name=("good.csv", "broken.csv"), dest_sql=url, dest_table="t", load_retries=2
    )
    report = load(settings)
    assert report.exit_code == 1
    results = {f.path: f for f in report.files}
    assert results["good.csv"].status == "loaded"
    assert results["broken.csv"].status == "failed"
    assert "HTTP 500" in results["broken.csv"].error and "3 attempts" in results["broken.csv"].error
    assert http.log.gets("/broken.csv") == 3  # the first try and two retries
    ledger = ledger_rows(engine_of(url))
    assert ledger["broken.csv"]["status"] == "failed" and "HTTP 500" in ledger["broken.csv"]["error"]
    assert staged(engine_of(url), "t") == [("good.csv", 1, "A"), ("good.csv", 2, "B")]


def test_an_s3_download_that_keeps_failing_is_tried_load_retries_plus_one_times(bucket, make_settings, tmp_path):
    """One retry policy: LOAD_RETRIES, not botocore's and s3fs's attempts multiplied by ours."""
    bucket.put("q1/broken.csv", b"id,energy\n9,Z\n")
    bucket.server.faults.fail(f"/{bucket.name}/q1/broken.csv", 100)
    url = f"sqlite:///{tmp_path / 's3fail.db'}"
    settings = make_settings(src_data_folder=f"s3://{bucket.name}/q1", dest_sql=url, load_retries=2)
    result = load(settings).files[0]
    assert result.status == "failed" and "3 attempts" in result.error
    assert bucket.log.gets(f"/{bucket.name}/q1/broken.csv") == 3


def test_a_download_failing_during_the_bulk_load_is_the_files_failure_not_the_databases(
    http, db_url, make_settings, engine_of
):
    write_bytes(http.root / "late.csv", b"id,energy\n9,Z\n")
    # Profiling reads the head twice and the worker checks the header once: the bulk load's GETs fail.
    http.faults.fail("/late.csv", 10, after=3)
    settings = make_settings(src_data_folder=http.url, src_file_name=("late.csv",), dest_sql=db_url, load_retries=1)
    result = load(settings).files[0]
    assert result.status == "failed" and result.attempts == 1
    assert "HTTP 500" in result.error and "database" not in result.error
    assert ledger_rows(engine_of(db_url))["late.csv"]["status"] == "failed"


@pytest.mark.parametrize("where", ["http", "s3"])
def test_a_file_replaced_after_it_was_listed_is_not_read(where, request):
    """Reading pins the fingerprint of the listing: another version is refused, not mixed in."""
    if where == "http":
        server = request.getfixturevalue("http")
        write_bytes(server.root / "a.csv", CERTS)
        source = discover(server.url, ("a.csv",)).files[0]
        write_bytes(server.root / "a.csv", b"id,energy\n1,Z\n")
    else:
        bucket = request.getfixturevalue("bucket")
        bucket.put("p/a.csv", CERTS)
        source = discover(f"s3://{bucket.name}/p", ("a.csv",)).files[0]
        bucket.put("p/a.csv", b"id,energy\n1,Z\n")
    with pytest.raises(remote.DownloadError, match="changed since it was listed"), open_binary(source) as raw:
        raw.read()


# ---------------------------------------------------------------- index.py


def test_index_loads_an_s3_prefix_with_worker_processes(bucket, tmp_path):
    bucket.put("q1/a/certificates.csv", CERTS)
    bucket.put("q1/b/certificates.csv", b"id,energy\n3,C\n")
    env = {**bucket.server.env, "SRC_DATA_FOLDER": f"s3://{bucket.name}/q1", "SRC_FILE_NAME": "certificates.csv"}
    done = run_index(tmp_path, "load", env={**env, "DEST_TABLE": "certs", "LOAD_WORKERS": "2"})
    assert done.returncode == 0, done.stderr
    assert "2 loaded" in done.stdout


@pytest.mark.parametrize(
    "source, message",
    [("s3://no-such-bucket-{uuid}/q1", "bucket does not exist"), ("http://127.0.0.1:9/dumps", "127.0.0.1:9")],
    ids=["missing-bucket", "unreachable-base-url"],
)
def test_index_a_missing_bucket_or_unreachable_url_exits_3_with_one_message(s3_server, tmp_path, source, message):
    env = {
        **s3_server.env,
        "SRC_DATA_FOLDER": source.format(uuid=uuid.uuid4().hex[:8]),
        "SRC_FILE_NAME": "raw_orders.csv",
        "LOAD_RETRIES": "1",
    }
    done = run_index(tmp_path, "load", env=env, timeout=120)
    output = done.stdout + done.stderr
    assert done.returncode == 3, output
    assert message in output and "Traceback" not in output
    assert s3_server.env["AWS_SECRET_ACCESS_KEY"] not in output


def test_index_never_shows_url_credentials(http, tmp_path):
    write_bytes(http.root / "raw_orders.csv", b"id\n1\n")
    port = http.server_address[1]
    source = (
        f"http://loader:pa55word@127.0.0.1:{port}/raw_orders.csv?sig=s3cr3t-signature,http://127.0.0.1:{port}/gone.csv"
    )
    done = run_index(tmp_path, "load", env={"SRC_DATA_FOLDER": source, "LOG_LEVEL": "DEBUG", "SUMMARY_JSON": "s.json"})
    assert done.returncode == 0, done.stderr
    everything = done.stdout + done.stderr + (tmp_path / "s.json").read_text()
    assert "gone.csv: not found" in everything
    assert "pa55word" not in everything and "s3cr3t-signature" not in everything
