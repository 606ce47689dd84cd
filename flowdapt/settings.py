"""Application settings: the app dir, ``flowdapt.yaml`` and its overrides.

The app dir is ``~/.flowdapt`` unless ``FLOWDAPT_APP_DIR`` (or ``--app-dir``) says otherwise; the
configuration file is ``flowdapt.yaml`` in it. Precedence, lowest first: defaults, the file,
environment variables ``FLOWDAPT__SECTION__KEY=value``, then ``-o section.key=value`` overrides.
Values given as text (environment, ``-o``, ``config set``) are read as YAML scalars, so ``true``,
``3`` and ``[1, 2]`` arrive typed. A wrong key or value is a :class:`ConfigError` naming the key.

:func:`get_settings` is the single place other modules read configuration from.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal, Mapping

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from flowdapt import process
from flowdapt.errors import FlowdaptError
from flowdapt.units import parse_bytes, parse_retention

CONFIG_FILE = "flowdapt.yaml"
ENV_PREFIX = "FLOWDAPT__"


class ConfigError(FlowdaptError):
    """A configuration key or value is wrong; the message names the source and the key."""

    def __init__(self, message: str, *, key: str | None = None, source: str | None = None) -> None:
        super().__init__(message, key, source)
        self.message = message
        self.key = key
        self.source = source

    def __str__(self) -> str:
        return ": ".join(part for part in (self.source, self.key, self.message) if part)


class StorageSettings(BaseModel):
    """Where artifacts (object-store fallback, output notebooks) are written, as an fsspec location."""

    model_config = ConfigDict(extra="forbid")

    protocol: str = "file"
    base_path: str = ""
    parameters: dict[str, Any] = Field(default_factory=dict)


class ExecutorSettings(BaseModel):
    """The default executor: a registry name plus its options."""

    model_config = ConfigDict(extra="forbid")

    name: str = "local"
    options: dict[str, Any] = Field(default_factory=dict)


class DatabaseSettings(BaseModel):
    """The run-history database: a SQLAlchemy URL (empty = DuckDB file ``history.duckdb`` in the app dir)."""

    model_config = ConfigDict(extra="forbid")

    url: str = ""

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if value and not re.match(r"^(duckdb|sqlite|postgresql(\+\w+)?)://", value) and not _plugin_backend(value):
            raise ValueError(f"unsupported database URL '{value}' (use duckdb:///, sqlite:/// or postgresql+psycopg://)")
        return value


def _plugin_backend(url: str) -> bool:
    """Whether a history backend from a plugin serves ``url`` (imported only for such URLs)."""
    from flowdapt.history.backends import HISTORY_BACKENDS

    return re.split(r"[+:]", url, maxsplit=1)[0] in HISTORY_BACKENDS


class LoggingSettings(BaseModel):
    """Log level and format; ``show_tracebacks`` makes the CLI print tracebacks as ``--debug`` does."""

    model_config = ConfigDict(extra="forbid")

    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["console", "json"] = "console"
    show_tracebacks: bool = False

    @field_validator("level", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value


class NotebookSettings(BaseModel):
    """Kernels of notebook stages (see :mod:`flowdapt.notebook.warm_kernels`): ``warm_kernels`` started ahead
    per kernel name in each process running notebook stages (0: one started per run, as papermill
    does), ``kernel_runs`` notebooks one kernel runs before it is replaced (1: a fresh kernel per run)."""

    model_config = ConfigDict(extra="forbid")

    warm_kernels: int = Field(default=1, ge=0, le=64)
    kernel_runs: int = Field(default=1, ge=1)


class LogsSettings(BaseModel):
    """What stages print and log, captured per attempt (see :mod:`flowdapt.compute.logs`): ``capture``
    turns it off; ``max_bytes`` is what one attempt keeps (its first and last lines; the rest is counted)."""

    model_config = ConfigDict(extra="forbid")

    capture: bool = True
    max_bytes: int = Field(default=1_000_000, ge=1_000)

    @field_validator("max_bytes", mode="before")
    @classmethod
    def _size(cls, value: Any) -> Any:
        return parse_bytes(value) if isinstance(value, str) else value


class SmtpSettings(BaseModel):
    """The mail server ``notify`` actions send email through (a trigger's own ``smtp`` parameters win)."""

    model_config = ConfigDict(extra="forbid")

    host: str = "localhost"
    port: int = Field(default=25, ge=1, le=65535)
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    ssl: bool = False
    sender: str = "flowdapt@localhost"
    timeout: float = Field(default=10.0, gt=0)


class NotifySettings(BaseModel):
    """Defaults of the ``notify`` trigger action."""

    model_config = ConfigDict(extra="forbid")

    smtp: SmtpSettings = Field(default_factory=SmtpSettings)
    timeout: float = Field(default=10.0, gt=0)  # seconds a webhook may take


class Settings(BaseModel):
    """The whole configuration (the shape of ``flowdapt.yaml``)."""

    model_config = ConfigDict(extra="forbid")

    app_dir: Path = Field(default_factory=lambda: default_app_dir())
    default_namespace: str = Field(default="default", pattern=r"^[A-Za-z0-9_.-]+$")
    executor: ExecutorSettings = Field(default_factory=ExecutorSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    run_retention: int | float | str = -1
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    notebook: NotebookSettings = Field(default_factory=NotebookSettings)
    logs: LogsSettings = Field(default_factory=LogsSettings)
    notify: NotifySettings = Field(default_factory=NotifySettings)

    @field_validator("run_retention")
    @classmethod
    def _retention(cls, value: Any) -> Any:
        parse_retention(value)
        return value

    def storage_root(self) -> str:
        """The fsspec path artifacts live under (the app dir for the default file storage)."""
        if self.storage.base_path:
            return self.storage.base_path
        return str(self.app_dir) if self.storage.protocol == "file" else "flowdapt"

    def database_url(self) -> str:
        """The run-history SQLAlchemy URL (default: ``duckdb:///<app_dir>/history.duckdb``)."""
        return self.database.url or f"duckdb:///{Path(self.app_dir).expanduser() / 'history.duckdb'}"

    def retention_seconds(self) -> float | None:
        """``run_retention`` in seconds; ``None`` keeps runs forever."""
        return parse_retention(self.run_retention)

    def config_file(self) -> Path:
        return Path(self.app_dir) / CONFIG_FILE


def default_app_dir() -> Path:
    """``FLOWDAPT_APP_DIR`` (or ``FLOWDAPT__APP_DIR``), else ``~/.flowdapt``."""
    chosen = os.environ.get("FLOWDAPT_APP_DIR") or os.environ.get("FLOWDAPT__APP_DIR")
    return Path(chosen or Path.home() / ".flowdapt").expanduser()


def parse_value(text: str) -> Any:
    """A value given as text, read as a YAML scalar or flow collection (``"3"`` → 3, ``"true"`` → True)."""
    try:
        return yaml.safe_load(text) if text.strip() else text
    except yaml.YAMLError:
        return text


def set_key(data: dict[str, Any], key: str, value: Any) -> None:
    """Set dotted ``key`` (``a.b.c``) in nested ``data``, creating the mappings on the way."""
    parts = key.split(".")
    if not all(parts):
        raise ConfigError("empty part in key", key=key)
    node = data
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[parts[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """Split an ``-o a.b=value`` override into its key and typed value."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"invalid override '{text}' (expected key=value, e.g. database.url=sqlite:///h.db)", source="-o")
    return key.strip(), parse_value(value)


def read_config_file(path: Path) -> dict[str, Any]:
    """The mapping in a ``flowdapt.yaml`` (empty when the file does not exist)."""
    if not path.exists():
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read file: {exc}", source=str(path)) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise ConfigError(f"{where}invalid YAML: {getattr(exc, 'problem', None) or exc}", source=str(path)) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"expected a mapping of settings, got {type(data).__name__}", source=str(path))
    return data


def env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """Settings from ``FLOWDAPT__A__B=value`` variables (keys lower-cased, ``__`` → nesting)."""
    data: dict[str, Any] = {}
    for name, value in sorted(environ.items()):
        if name.startswith(ENV_PREFIX) and len(name) > len(ENV_PREFIX):
            set_key(data, name[len(ENV_PREFIX):].lower().replace("__", "."), parse_value(value))
    return data


def deep_merge(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``update`` merged in, mapping by mapping (neither is modified)."""
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def validate_settings(data: Mapping[str, Any], source: str | None = None) -> Settings:
    """Build :class:`Settings`; the first problem becomes a :class:`ConfigError` naming the dotted key."""
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join(str(part) for part in error["loc"]) or None
        message = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
        if message.startswith("Value error, "):
            message = message[len("Value error, "):]
        raise ConfigError(message, key=key, source=source) from None


def load_settings(
    app_dir: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Settings from ``flowdapt.yaml`` in the app dir, the environment and ``-o key=value`` overrides.

    Parameters
    ----------
    app_dir : the app dir (default: ``FLOWDAPT_APP_DIR`` or ``~/.flowdapt``)
    overrides : ``key=value`` strings, applied last
    environ : the environment to read ``FLOWDAPT__*`` from (default: ``os.environ``)
    """
    environ = os.environ if environ is None else environ
    root = Path(app_dir).expanduser() if app_dir else default_app_dir()
    path = root / CONFIG_FILE
    file_data = read_config_file(path)
    validate_settings({"app_dir": root, **file_data}, source=str(path))
    data = deep_merge(file_data, env_overrides(environ))
    validate_settings({"app_dir": root, **data}, source="environment")
    for text in overrides:
        key, value = parse_override(text)
        set_key(data, key, value)
    return validate_settings({**data, "app_dir": root}, source="-o" if overrides else None)


def lookup(settings: Settings, key: str) -> Any:
    """The JSON-safe value at dotted ``key`` of ``settings``; :class:`ConfigError` if there is none."""
    node: Any = settings.model_dump(mode="json")
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise ConfigError("unknown key", key=key)
        node = node[part]
    return node


def write_setting(app_dir: str | Path, key: str, text: str) -> Settings:
    """Set ``key`` to ``text`` (read as YAML) in the app dir's ``flowdapt.yaml``, validating first.

    Nothing is written when the key or the value is wrong.
    """
    path = Path(app_dir).expanduser() / CONFIG_FILE
    data = read_config_file(path)
    set_key(data, key, parse_value(text))
    settings = validate_settings({"app_dir": Path(app_dir), **data}, source=str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".yaml.tmp")
    tmp.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    tmp.replace(path)
    return settings


def get_settings() -> Settings:
    """The settings in force (:func:`flowdapt.process.current`; loaded from the app dir and environment on first use)."""
    return process.current().made("settings", load_settings)


def set_settings(settings: Settings | None) -> None:
    """Replace the settings in force (``None`` loads them again on next use)."""
    process.current().settings = settings
