"""Runtime settings (env prefix `CRYPTO_PIPELINE_`, `.env` honoured)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from models.enums import Exchange, Interval, parse_enum_list
from models.errors import InputError
from models.symbols import is_rule, parse_rule, parse_symbols

DEFAULT_SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT"]
DEFAULT_PERP_SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
_REPO_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")
_URI_SCHEMES = ("s3://", "file://")
ALLOWANCE_ENV = "CRYPTO_PIPELINE_ALLOWANCE"
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
_LOCAL_SHARE_RE = re.compile(r"^local(?:/([1-9][0-9]{0,3}))?$")


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


def validate_allowance(choice: str) -> str:
    """Accept `local`, `local/N` (N processes share one address: each takes 1/N) or a Redis URL."""
    text = choice.strip()
    if _LOCAL_SHARE_RE.match(text.lower()):
        return text.lower()
    if text.lower().startswith(REDIS_SCHEMES) and len(text) > text.index("://") + 3:
        return text
    raise InputError(
        f"{ALLOWANCE_ENV}={choice!r} is not an allowance backend: use local, local/N "
        "(N processes on one address) or redis://host:6379/0"
    )


def local_share(choice: str) -> int | None:
    """N of a `local/N` allowance (1 for `local`); None for a shared backend (a URL)."""
    found = _LOCAL_SHARE_RE.match(choice)
    if found is None:
        return None
    return int(found.group(1) or 1)


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
    # Prefect-level retries of a failed partition fetch (the clients already retry fast, for
    # at most `clients.base.RetryPolicy.budget` seconds a request): delays of 3 s then 9 s, so
    # an unreachable exchange fails its partitions within a minute.
    task_retries: int = Field(default=2, ge=0, le=10)
    task_retry_delay_s: float = Field(default=3.0, ge=0)
    # A task run (an exchange's chunk of days, a silver chunk) taking longer is failed.
    task_timeout_s: float = Field(default=3600.0, gt=0)
    # Client-side pacing of the shared clients: off only against a sandbox whose limits are
    # off (benchmarks); the scale matches a sandbox run with proportionally shrunk limits.
    client_rate_limits: bool = True
    rate_limit_scale: float = Field(default=1.0, gt=0, le=1.0)
    # Where the exchanges' allowance is kept (see .env.example): `local` for a lone process,
    # `local/N` for N processes behind one address without Redis, or a Redis URL shared by
    # every process and worker leaving through one address.
    allowance: str = "local"
    # With a Redis allowance unreachable at start: 0 refuses to start; N > 0 runs on `local/N`
    # (logged as a warning).
    allowance_fallback_processes: int = Field(default=0, ge=0, le=1024)
    # Binance history: `auto` reads closed periods from the public archive (data.binance.vision,
    # checksummed monthly/daily files) and the rest from REST; `archive` or `rest` forces one.
    binance_source: Literal["rest", "archive", "auto"] = "auto"
    # The archive's base URL; unset: https://data.binance.vision, or the sandbox when
    # SANDBOX_URL is set (it serves the archive at the real paths).
    binance_archive_url: str | None = None
    # Ask the archive for the .CHECKSUM of every file stored rows came from (one small request
    # a file) and re-ingest the days of those replaced since (`tasks.archive_recheck`).
    binance_archive_recheck: bool = False
    # Days after a closed day's end during which rows still missing from it (not yet published,
    # quarantined for a source error) are fetched again on every run; after that, what is still
    # missing is recorded as a gap of the source and the day is complete.
    settle_days: int = Field(default=3, ge=0, le=366)
    # HF_TOKEN (no prefix) is read by `hf_token()`; never a field so it never reaches a dump.
    # S3 for an s3:// warehouse: the standard AWS variables (no prefix), from the environment or
    # `.env` (the environment wins), handed to the storage layer by `s3_env()`. Credentials are
    # SecretStr: a repr, dump, log line or parameter shows `**********`, never the value.
    aws_endpoint_url: str | None = Field(
        default=None, validation_alias=AliasChoices("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
    )
    aws_region: str | None = Field(
        default=None, validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION")
    )
    aws_access_key_id: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("AWS_ACCESS_KEY_ID")
    )
    aws_secret_access_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("AWS_SECRET_ACCESS_KEY")
    )
    aws_session_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("AWS_SESSION_TOKEN")
    )

    def s3_env(self) -> dict[str, str]:
        """The S3 settings given (environment or `.env`) as the standard AWS variables, secrets
        revealed: for `storage.fs.open_location` only, never to be logged or passed on."""
        out: dict[str, str] = {}
        if self.aws_endpoint_url:
            out["AWS_ENDPOINT_URL_S3"] = self.aws_endpoint_url  # the name storage.fs reads first
        if self.aws_region:
            out["AWS_REGION"] = self.aws_region
        for name, secret in (
            ("AWS_ACCESS_KEY_ID", self.aws_access_key_id),
            ("AWS_SECRET_ACCESS_KEY", self.aws_secret_access_key),
            ("AWS_SESSION_TOKEN", self.aws_session_token),
        ):
            if secret is not None and secret.get_secret_value():
                out[name] = secret.get_secret_value()
        return out

    @field_validator("warehouse")
    @classmethod
    def _warehouse(cls, v: str) -> str:
        try:
            return validate_warehouse_uri(v)
        except InputError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("allowance")
    @classmethod
    def _allowance(cls, v: str) -> str:
        try:
            return validate_allowance(v)
        except InputError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("binance_source", mode="before")
    @classmethod
    def _binance_source(cls, v: Any) -> Any:
        return v.strip().lower() if isinstance(v, str) else v

    @field_validator("binance_archive_url")
    @classmethod
    def _archive_url(cls, v: str | None) -> str | None:
        if v is None or not v.strip():
            return None
        text = v.strip().rstrip("/")
        if not text.startswith(("http://", "https://")):
            raise ValueError(f"{v!r} is not an http(s) URL")
        return text

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
            return parse_universe(v)
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
        field = ".".join(str(p) for p in first["loc"])
        msg = str(first["msg"]).removeprefix("Value error, ")
        if not field:
            raise InputError(f"invalid settings: {msg}") from None
        raise InputError(f"invalid setting {env_name(field)}: {msg}") from None


def env_name(field: str) -> str:
    """The environment variable of a settings field: `exchanges` -> `CRYPTO_PIPELINE_EXCHANGES`
    (what a user sets, in `.env` or the environment)."""
    prefix = str(Settings.model_config.get("env_prefix") or "")
    return f"{prefix}{field}".upper()


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


def parse_universe(values: str | Sequence[str]) -> list[str]:
    """Symbols and symbol rules (`top:N`, `top:N:QUOTE`, `all:QUOTE`) from a comma-separated
    string or a list: symbols unified, rules normalized (`top:3`), in order without repeats;
    the first malformed one refused by name (`InputError`). Rules are resolved once per run
    from the listing snapshot (`tasks.bronze_stage`)."""
    raw = values.split(",") if isinstance(values, str) else list(values)
    rules = [str(parse_rule(item)) for item in raw if isinstance(item, str) and is_rule(item)]
    names = [item for item in raw if not (isinstance(item, str) and is_rule(item))]
    symbols = parse_symbols(names) if any(str(n).strip() for n in names) or not rules else []
    out: list[str] = []
    for item in [*symbols, *rules]:
        if item not in out:
            out.append(item)
    return out
