"""Application settings: the app dir and what lives there.

The app dir is ``~/.flowdapt`` unless ``FLOWDAPT_APP_DIR`` says otherwise. The settings model is the
single place other modules read configuration from (:func:`get_settings`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


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


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    app_dir: Path = Field(default_factory=lambda: default_app_dir())
    default_namespace: str = "default"
    executor: ExecutorSettings = Field(default_factory=ExecutorSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)

    def storage_root(self) -> str:
        """The fsspec path artifacts live under (the app dir for the default file storage)."""
        if self.storage.base_path:
            return self.storage.base_path
        return str(self.app_dir) if self.storage.protocol == "file" else "flowdapt"


def default_app_dir() -> Path:
    return Path(os.environ.get("FLOWDAPT_APP_DIR") or Path.home() / ".flowdapt").expanduser()


_settings: Settings | None = None


def get_settings() -> Settings:
    """The settings in force (built on first use)."""
    global _settings
    if _settings is None:
        _settings = Settings()
    return _settings


def set_settings(settings: Settings | None) -> None:
    """Replace the settings in force (``None`` rebuilds them on next use)."""
    global _settings
    _settings = settings
