"""Runtime settings (env prefix `CRYPTO_PIPELINE_`, `.env` honoured)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from models.enums import Exchange, Interval, parse_enum_list
from models.errors import InputError
from models.symbols import parse_symbols

DEFAULT_SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT"]
DEFAULT_PERP_SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
_REPO_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")
_URI_SCHEMES = ("s3://", "file://")


def validate_warehouse_uri(uri: str) -> str:
    """Accept a local path, `file://` path or `s3://bucket[/prefix]`; refuse anything else."""
    text = uri.strip()
    if not text:
        raise InputError("warehouse URI is empty")
    if "://" in text and not text.startswith(_URI_SCHEMES):
        raise InputError(
            f"unsupported warehouse URI {uri!r}: use a local path or s3://bucket/prefix"
        )
    if text.startswith("s3://"):
        bucket = text[5:].split("/", 1)[0]
        if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", bucket):
            raise InputError(f"invalid S3 bucket name {bucket!r} in warehouse URI {uri!r}")
    if any(ord(c) < 32 for c in text):
        raise InputError(f"warehouse URI {uri!r} contains control characters")
    return text


def validate_repo_id(repo_id: str) -> str:
    if not _REPO_ID_RE.match(repo_id) or ".." in repo_id:
        raise InputError(f"invalid Hugging Face repo id {repo_id!r}: expected ORG/NAME")
    return repo_id


class Settings(BaseSettings):
    """Everything configurable; defaults run the embedded sandbox setup."""

    model_config = SettingsConfigDict(
        env_prefix="CRYPTO_PIPELINE_", env_file=".env", extra="ignore"
    )

    warehouse: str = "./data/warehouse"
    sandbox_url: str | None = None
    symbols: Annotated[list[str], NoDecode] = Field(default_factory=lambda: list(DEFAULT_SYMBOLS))
    perp_symbols: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_PERP_SYMBOLS)
    )
    exchanges: Annotated[list[Exchange], NoDecode] = Field(default_factory=lambda: list(Exchange))
    intervals: Annotated[list[Interval], NoDecode] = Field(default_factory=lambda: list(Interval))
    publish_dir: str = "./data/dataset"
    hf_repo_id: str | None = None
    hf_token_block: str = "hf-token"
    # Prefect-level retries of a failed partition fetch (the clients already retry fast).
    task_retries: int = Field(default=2, ge=0, le=10)
    task_retry_delay_s: float = Field(default=10.0, ge=0)
    # Client-side pacing of the shared clients: off only against a sandbox whose limits are
    # off (benchmarks); the scale matches a sandbox run with proportionally shrunk limits.
    client_rate_limits: bool = True
    rate_limit_scale: float = Field(default=1.0, gt=0, le=1.0)
    # HF_TOKEN (no prefix) is read by `hf_token()`; never a field so it never reaches a dump.

    @field_validator("warehouse")
    @classmethod
    def _warehouse(cls, v: str) -> str:
        try:
            return validate_warehouse_uri(v)
        except InputError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("hf_repo_id")
    @classmethod
    def _repo(cls, v: str | None) -> str | None:
        if v is None or v == "":
            return None
        try:
            return validate_repo_id(v)
        except InputError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("symbols", "perp_symbols", mode="before")
    @classmethod
    def _symbols(cls, v: Any) -> list[str]:
        try:
            return parse_symbols(v)
        except InputError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("exchanges", mode="before")
    @classmethod
    def _exchanges(cls, v: Any) -> list[Exchange]:
        try:
            return parse_enum_list(Exchange, v)
        except InputError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("intervals", mode="before")
    @classmethod
    def _intervals(cls, v: Any) -> list[Interval]:
        try:
            return parse_enum_list(Interval, v)
        except InputError as exc:
            raise ValueError(str(exc)) from None


def load_settings(**overrides: Any) -> Settings:
    """Build settings from env/.env plus overrides, turning validation errors into `InputError`."""
    from pydantic import ValidationError

    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "settings"
        msg = str(first["msg"]).removeprefix("Value error, ")
        raise InputError(f"invalid setting {field.upper()}: {msg}") from None


def hf_token(block_name: str = "hf-token") -> SecretStr | None:
    """The Hugging Face token from `HF_TOKEN`, else a Prefect Secret block; never logged."""
    import os

    value = os.environ.get("HF_TOKEN")
    if value:
        return SecretStr(value)
    try:
        from prefect.blocks.system import Secret

        secret: Any = Secret.load(block_name, _sync=True)  # type: ignore[call-arg]
        return SecretStr(str(secret.get()))
    except Exception:
        return None
