"""Configuration: flowdapt.yaml, FLOWDAPT__A__B environment overrides, -o overrides, errors naming the key."""

from __future__ import annotations

import pytest

from flowdapt.settings import ConfigError, load_settings, lookup, parse_retention, write_setting


def test_file_then_environment_then_overrides_take_precedence(tmp_path):
    (tmp_path / "flowdapt.yaml").write_text(
        "default_namespace: from-file\nexecutor: {name: dask, options: {n_workers: 2}}\nrun_retention: 7d\n")
    settings = load_settings(tmp_path, ["executor.options.n_workers=4", "logging.level=DEBUG"],
                             environ={"FLOWDAPT__DEFAULT_NAMESPACE": "from-env",
                                      "FLOWDAPT__DATABASE__URL": "sqlite:///h.db",
                                      "FLOWDAPT__EXECUTOR__OPTIONS__THREADS": "true"})
    assert settings.app_dir == tmp_path
    assert settings.default_namespace == "from-env"
    assert settings.executor.name == "dask"
    assert settings.executor.options == {"n_workers": 4, "threads": True}
    assert settings.database_url() == "sqlite:///h.db"
    assert settings.logging.level == "debug"
    assert settings.retention_seconds() == 7 * 86400


def test_defaults_put_the_duckdb_history_in_the_app_dir(tmp_path):
    settings = load_settings(tmp_path, environ={})
    assert settings.database_url() == f"duckdb:///{tmp_path / 'history.duckdb'}"
    assert settings.retention_seconds() is None
    assert settings.storage_root() == str(tmp_path)


@pytest.mark.parametrize("value, seconds", [(-1, None), ("-1", None), (0, 0.0), (3600, 3600.0),
                                            ("12h", 43200.0), ("1d12h", 129600.0), ("90s", 90.0), ("2w", 1209600.0)])
def test_run_retention_reads_flowdapt_values_and_durations(value, seconds):
    assert parse_retention(value) == seconds


@pytest.mark.parametrize("source, problem", [
    ({"file": "databse: {url: x}\n"}, "flowdapt.yaml: databse: unknown key"),
    ({"file": "executor: {nmae: local}\n"}, "flowdapt.yaml: executor.nmae: unknown key"),
    ({"file": "run_retention: forever\n"}, "flowdapt.yaml: run_retention: invalid retention 'forever'"),
    ({"file": "logging: {level: loud}\n"}, "flowdapt.yaml: logging.level: Input should be"),
    ({"file": "database: {url: mysql://x}\n"}, "flowdapt.yaml: database.url: unsupported database URL"),
    ({"file": "executor: [\n"}, "flowdapt.yaml: line 2: invalid YAML"),
    ({"env": {"FLOWDAPT__LOGGING__SHOW_TRACEBACKS": "maybe"}}, "environment: logging.show_tracebacks:"),
    ({"override": ["storage.colour=red"]}, "-o: storage.colour: unknown key"),
    ({"override": ["no-equals-sign"]}, "-o: invalid override 'no-equals-sign'"),
])
def test_a_wrong_key_or_value_is_an_error_naming_it(tmp_path, source, problem):
    if "file" in source:
        (tmp_path / "flowdapt.yaml").write_text(source["file"])
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path, source.get("override", []), environ=source.get("env", {}))
    assert problem in str(caught.value)


def test_write_setting_validates_before_writing(tmp_path):
    write_setting(tmp_path, "database.url", "sqlite:///x.db")
    assert lookup(load_settings(tmp_path, environ={}), "database.url") == "sqlite:///x.db"
    before = (tmp_path / "flowdapt.yaml").read_text()
    with pytest.raises(ConfigError, match="database.uri: unknown key"):
        write_setting(tmp_path, "database.uri", "sqlite:///y.db")
    with pytest.raises(ConfigError, match="no.such: unknown key"):
        lookup(load_settings(tmp_path, environ={}), "no.such")
    assert (tmp_path / "flowdapt.yaml").read_text() == before
