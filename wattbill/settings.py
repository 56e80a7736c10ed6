"""wattbill's settings, read once: environment variables ``WATTBILL_*``, then an optional ``wattbill.toml``.

Every part of wattbill that depends on the environment asks :func:`get_settings` (never ``os.environ``).
The first call reads the environment and the file; later calls return the same object. A command-line
option (``--store``, ``--tariffs``) overrides its setting for that command.

Precedence, highest first: an explicit argument (a command-line option or a keyword of the notebook
API), the environment (``WATTBILL_STORE=...``), the file named by ``WATTBILL_CONFIG`` (default
``./wattbill.toml``, skipped when absent), then the defaults below. Every setting is documented in
``docs/settings.md``.

``wattbill.toml`` uses the same names without the prefix, in lower case::

    store = "postgresql://billing@db.example/wattbill"
    tariffs = "/etc/wattbill/tariffs"
    ingest_bucket_mb = 64
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from wattbill.errors import WattbillError

DEFAULT_STORE = "./wattbill-data"
CONFIG_ENV = "WATTBILL_CONFIG"
DEFAULT_CONFIG = "wattbill.toml"


class Settings(BaseSettings):
    """The settings of wattbill (environment ``WATTBILL_<NAME>``, or ``<name>`` in ``wattbill.toml``).

    Attributes
    ----------
    store : str
        The store: a folder for the embedded store (Delta Lake tables) or a ``postgresql://`` URL for TimescaleDB
        (``WATTBILL_STORE``; default ``./wattbill-data``).
    tariffs : pathlib.Path or None
        A folder (or file) of extra tariff files read beside the shipped catalogue
        (``WATTBILL_TARIFFS``).
    secret : pydantic.SecretStr
        The key that signs customers' download tokens (``WATTBILL_SECRET``; at least 16 characters
        where tokens are made or checked; never printed).
    secret_previous : pydantic.SecretStr or None
        The previous signing key, still accepted while tokens signed with it live (key rotation,
        ``WATTBILL_SECRET_PREVIOUS``; at least 16 characters when set; never printed).
    max_daily_kwh : float or None
        The most a residential connection can draw in a day [kWh] (``WATTBILL_MAX_DAILY_KWH``; default
        316.8 = 60 A x 220 V x 24 h, ``ingest.limits``); raise it for three-phase connections.
    bill_max_missing_days : int
        The most open days without a read that a year's bill may leave out [days]
        (``WATTBILL_BILL_MAX_MISSING_DAYS``; default 31, one month of reads). A household with more
        (its meter stopped reporting, or its reads have not arrived) is not billed
        (``wattbill.bill.incomplete_reads``); a bill with fewer states them (``missing_days``).
    debug : bool
        Let an internal error's traceback through (``WATTBILL_DEBUG=1``; for developers).
    progress : bool
        Show progress bars even when stderr is not a terminal (``WATTBILL_PROGRESS=1``).
    ingest_bucket_mb : float or None
        Target size of a customer bucket when a large file is ingested in parts [MB]
        (``WATTBILL_INGEST_BUCKET_MB``; default: ``ingest.readers``' own).
    font_cache : pathlib.Path or None
        Where the subset fonts of the bills are cached (``WATTBILL_FONT_CACHE``; default
        ``$XDG_CACHE_HOME/wattbill/fonts``).
    store_history_days : float
        Days of the embedded store's history kept for time travel (auditors opening an earlier
        state) when ``EmbeddedStore.compact`` vacuums its Delta tables [days]
        (``WATTBILL_STORE_HISTORY_DAYS``; default 30).
    """

    model_config = SettingsConfigDict(env_prefix="WATTBILL_", extra="ignore", frozen=True)

    store: str = DEFAULT_STORE
    tariffs: Path | None = None
    secret: SecretStr = SecretStr("")
    secret_previous: SecretStr | None = None
    max_daily_kwh: float | None = Field(default=None, gt=0, lt=1e9, allow_inf_nan=False)
    bill_max_missing_days: int = Field(default=31, ge=0, le=366)
    debug: bool = False
    progress: bool = False
    ingest_bucket_mb: float | None = Field(default=None, gt=0)
    font_cache: Path | None = None
    store_history_days: float = Field(default=30.0, ge=0)

    @field_validator("store", mode="before")
    @classmethod
    def _empty_store_is_default(cls, value: Any) -> Any:
        return DEFAULT_STORE if value in (None, "") else value

    @field_validator("tariffs", "font_cache", "ingest_bucket_mb", "secret_previous", "max_daily_kwh", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        config = Path(os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG)
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if config.is_file():
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config))
        return tuple(sources)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read on the first call and cached.

    Returns
    -------
    Settings

    Raises
    ------
    wattbill.errors.WattbillError
        A setting that does not validate (one line naming it), or an unreadable ``wattbill.toml``.
    """
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        name = ".".join(str(p) for p in first.get("loc", ())) or "settings"
        raise WattbillError(f"setting {name} (WATTBILL_{name.upper()}): {first.get('msg', 'invalid')}") from None
    except (OSError, ValueError) as exc:  # an unreadable or malformed wattbill.toml
        raise WattbillError(f"{os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG}: {exc}".splitlines()[0]) from None


def reload_settings() -> Settings:
    """Read the settings again (after the environment or ``wattbill.toml`` changed, e.g. in a test)."""
    get_settings.cache_clear()
    return get_settings()
