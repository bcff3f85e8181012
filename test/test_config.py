"""Settings from the environment, URLs users write, and secrets that never show."""

import dataclasses
import pickle
import time
from decimal import Decimal

import pytest

from processor.config import OPTIONS, Settings, describe_options
from processor.db import check_connection, create_engine, display_url, normalise_url
from processor.errors import ConfigError, DatabaseError


def test_every_setting_has_an_environment_variable_and_a_help_line():
    assert {o.attr for o in OPTIONS} == {f.name for f in dataclasses.fields(Settings)}
    text = describe_options()
    for option in OPTIONS:
        assert option.env in text


def test_values_are_parsed_and_defaults_kept():
    settings = Settings.from_env(
        {
            "LOAD_WORKERS": "3",
            "FULL_REFRESH": "yes",
            "SRC_FILE_NAME": "a.csv, */b.csv",
            "BONUS_RATE": "0.25",
            "NULL_VALUES": "null,N/A,NODATA!",
            "SRC_DELIMITER": "\\t",
        }
    )
    assert settings.load_workers == 3 and settings.full_refresh is True
    assert settings.src_file_name == ("a.csv", "*/b.csv")
    assert settings.bonus_rate == Decimal("0.25")
    assert settings.null_values == ("null", "N/A", "NODATA!")
    assert settings.src_delimiter == "\t"
    assert settings.max_errors == 100 and settings.dest_table is None


def test_every_problem_is_reported_at_once_with_the_variable_name():
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({"LOAD_WORKERS": "many", "MAX_ERRORS": "-1", "FULL_REFRESH": "maybe", "EXECUTOR": "dask"})
    message = str(raised.value)
    for name in ("LOAD_WORKERS", "MAX_ERRORS", "FULL_REFRESH", "DASK_SCHEDULER_ADDRESS"):
        assert name in message


def test_secrets_stay_out_of_repr_errors_and_help_but_settings_pickle():
    settings = Settings.from_env({"DEST_SQL": "postgresql://u:hunter2pw@db/x", "PIPEDRIVE_API_KEY": "tok-123456"})
    assert "hunter2pw" not in repr(settings) and "tok-123456" not in repr(settings)
    assert pickle.loads(pickle.dumps(settings)) == settings
    assert sorted(settings.secrets()) == ["hunter2pw", "tok-123456"]
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({"PIPEDRIVE_API_KEY": "tok-123456", "PARALLEL_PROCESS_NUMBER": "0"})
    assert "tok-123456" not in str(raised.value)
    assert "tok-123456" not in describe_options()


@pytest.mark.parametrize(
    "raw, driver",
    [
        ("postgresql://u@h/db", "postgresql+psycopg2"),
        ("postgres://u@h/db", "postgresql+psycopg2"),
        ("postgresql+psycopg2://u@h/db", "postgresql+psycopg2"),
        ("mysql://u@h/db", "mysql+pymysql"),
        ("mariadb://u@h/db", "mariadb+pymysql"),
        ("sqlite:///x.db", "sqlite"),
    ],
)
def test_urls_as_users_write_them_use_the_drivers_we_ship(raw, driver):
    url = normalise_url(raw)
    assert url.drivername == driver
    if "mysql" in driver or "mariadb" in driver:
        assert url.query["charset"] == "utf8mb4"


@pytest.mark.parametrize(
    "raw, message",
    [("not a url", "not a database URL"), ("oracle://u@h/db", "does not support"), ("sqlite://", "in-memory")],
)
def test_bad_urls_say_what_to_write(raw, message):
    with pytest.raises(ConfigError, match=message):
        normalise_url(raw)


def test_an_unreachable_database_fails_fast_with_the_password_masked():
    engine = create_engine("postgresql://user:hunter2pw@127.0.0.1:9/db")
    started = time.monotonic()
    with pytest.raises(DatabaseError) as raised:
        check_connection(engine)
    assert time.monotonic() - started < 15
    assert "hunter2pw" not in str(raised.value)
    assert "***" in str(raised.value)
    assert display_url("mysql://root:pw123@h/db") == "mysql://root:***@h/db"


def test_the_readme_documents_every_variable():
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    missing = [option.env for option in OPTIONS if f"`{option.env}`" not in readme]
    assert missing == []
