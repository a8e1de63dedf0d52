"""The dataset card (`README.md`): YAML `configs:` for the Hub and `datasets`, then the docs.

Deterministic: the same manifest and coverage always give the same text.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import polars as pl
import pyarrow as pa
import yaml

from models.enums import Interval
from models.silver import SILVER_MODELS, nullable_columns
from tasks.publish.layout import arrow_schema
from tasks.publish.licence import EXCHANGE_NAMES, EXCHANGE_TERMS, LICENCE_NAME, LICENCE_PATH
from tasks.publish.manifest import ConfigStats, Manifest

PRETTY_NAME = "Crypto market data: OHLCV, funding rates, open interest"
TAGS = ["finance", "crypto", "cryptocurrency", "ohlcv", "time-series", "market-data"]
DEFAULT_CONFIG = "ohlcv_1d"
MAX_GAPS_LISTED = 20
# The market kind whose listing a dataset's coverage is judged against.
DATASET_KIND = {"ohlcv": "spot", "funding": "perp", "open_interest": "perp"}
_SIZE_BOUNDS = [
    (1_000, "n<1K"),
    (10_000, "1K<n<10K"),
    (100_000, "10K<n<100K"),
    (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"),
    (100_000_000, "10M<n<100M"),
    (1_000_000_000, "100M<n<1B"),
]
_PRICE = "price in quote currency"
MEANINGS: dict[str, str] = {
    "exchange": "exchange the row comes from (binance, coinbase, okx)",
    "symbol": "unified symbol: BASE+QUOTE upper-case, no separator (BTCUSDT)",
    "interval": "candle length (1m, 5m, 15m, 1h, 4h, 1d)",
    "open": f"first trade {_PRICE}",
    "high": f"highest {_PRICE}",
    "low": f"lowest {_PRICE}",
    "close": f"last trade {_PRICE}",
    "volume": "traded volume in base units",
    "quote_volume": "traded volume in quote units",
    "trades": "number of trades",
    "vwap": "volume-weighted average price across exchanges (quote_volume / volume)",
    "n_exchanges": "number of exchanges in the aggregate",
    "exchanges": "the exchanges in the aggregate",
    "funding_rate": "funding rate for the period (0.0001 = 0.01 %); longs pay shorts when positive",
    "mark_price": "mark price at funding time",
    "interval_hours": "hours covered by this funding (the exchange's funding interval)",
    "apr": "funding_rate annualised over its interval",
    "open_interest": "open interest in base units",
    "open_interest_value": "open interest in quote currency",
    "native_symbol": "the exchange's own instrument id (BTCUSDT, BTC-USDT, BTC-USDT-SWAP)",
    "base": "base asset",
    "quote": "quote asset",
    "kind": "spot or perp (perpetual swap)",
    "status": "listing status reported by the exchange",
}
TS_MEANINGS = {
    "ohlcv": "candle open time, UTC; only closed candles are published",
    "ohlcv_aggregated": "candle open time, UTC",
    "funding": "funding time, UTC",
    "open_interest": "sample time, UTC",
}
DATASET_TITLES = {
    "ohlcv": "Candles per exchange",
    "ohlcv_aggregated": "Candles aggregated across exchanges",
    "funding": "Perpetual funding rates",
    "open_interest": "Perpetual open interest",
    "instruments": "Instruments",
}


def render_card(
    manifest: Manifest,
    *,
    repo_id: str | None,
    coverage: pl.DataFrame | None = None,
    listings: pl.DataFrame | None = None,
    states: pl.DataFrame | None = None,
) -> str:
    """The full `README.md`: front matter, description, schemas, coverage, licence, how to load.

    `listings` (exchange, symbol, kind) are the instruments each exchange lists; by default the
    built `instruments` config. Coverage leaves out the symbols an exchange does not list.
    `states` are the coverage states per exchange, dataset and symbol as
    `storage.planning.source_states` reports them (what `crypto-pipeline coverage` prints):
    their days unavailable at the source are listed with the reason.
    """
    configs = list(manifest.configs)
    if listings is None:
        listings = built_listings(manifest)
    sections = [
        _front_matter(configs, manifest.total_rows),
        _overview(configs, manifest),
        _schemas(configs),
        _coverage(coverage, listings) if coverage is not None else "",
        unavailable_section(states) if states is not None else "",
        _licence(configs),
        _loading(configs, repo_id),
    ]
    return "\n".join(s for s in sections if s).rstrip("\n") + "\n"


def default_config(configs: Iterable[ConfigStats]) -> str | None:
    names = [c.config for c in configs]
    if DEFAULT_CONFIG in names:
        return DEFAULT_CONFIG
    return next((n for n in names if n.startswith("ohlcv_")), names[0] if names else None)


def built_listings(manifest: Manifest) -> pl.DataFrame | None:
    """(exchange, symbol, kind) of the staged `instruments` config, or None if not built."""
    paths = [f.local_path for f in manifest.files if f.config == "instruments"]
    if not paths:
        return None
    return pl.concat(
        [pl.read_parquet(p, columns=["exchange", "symbol", "kind"]) for p in paths]
    ).unique()


def dataset_info(configs: list[ConfigStats]) -> list[dict[str, object]]:
    """`dataset_info` per config, as `datasets` reads it: features, the train split's rows."""
    return [
        {
            "config_name": c.config,
            "features": [
                {"name": field.name, **_feature(field.type)} for field in arrow_schema(c.dataset)
            ],
            "splits": [{"name": "train", "num_examples": c.rows}],
            "download_size": c.size,
        }
        for c in configs
    ]


def _feature(arrow: pa.DataType) -> dict[str, object]:
    """A `datasets` feature in its YAML form: `dtype: <type>` or `list: <inner>`."""
    if pa.types.is_list(arrow):
        inner = _feature(arrow.value_type)
        return {"list": inner["dtype"] if set(inner) == {"dtype"} else inner}
    if pa.types.is_timestamp(arrow):
        zone = f", tz={arrow.tz}" if arrow.tz else ""
        return {"dtype": f"timestamp[{arrow.unit}{zone}]"}
    names = {pa.string(): "string", pa.bool_(): "bool", pa.date32(): "date32"}
    return {"dtype": names.get(arrow, str(arrow))}


def size_category(rows: int) -> str:
    return next((label for bound, label in _SIZE_BOUNDS if rows < bound), "1B<n<10B")


def _front_matter(configs: list[ConfigStats], rows: int) -> str:
    default = default_config(configs)
    entries = []
    for c in configs:
        entry: dict[str, object] = {
            "config_name": c.config,
            "data_files": [{"split": "train", "path": c.glob}],
        }
        if c.config == default:
            entry["default"] = True
        entries.append(entry)
    meta = {
        "license": "other",
        "license_name": LICENCE_NAME,
        "license_link": LICENCE_PATH,
        "pretty_name": PRETTY_NAME,
        "tags": TAGS,
        "task_categories": ["time-series-forecasting"],
        "size_categories": [size_category(rows)],
        "configs": entries,
        "dataset_info": dataset_info(configs),
    }
    body = yaml.safe_dump(meta, sort_keys=False, default_flow_style=False, allow_unicode=True)
    return f"---\n{body}---\n"


def _overview(configs: list[ConfigStats], manifest: Manifest) -> str:
    exchanges = sorted({e for c in configs for e in c.exchanges})
    labels = [EXCHANGE_NAMES.get(e, e) for e in exchanges]
    names = " and ".join([", ".join(labels[:-1]), labels[-1]] if len(labels) > 1 else labels)
    lines = [
        f"# {PRETTY_NAME}",
        "",
        f"Market data from the public APIs of {names or 'the exchanges'}, cleaned and published",
        "by crypto-pipeline: candles per exchange and aggregated across exchanges, perpetual",
        "funding rates, open interest and instrument metadata. Timestamps are UTC with",
        "millisecond precision; prices are in the quote currency and volumes in base units.",
        "Every file carries its exchange, symbol and interval as columns, rows are sorted by",
        "(symbol, exchange, ts), and files are monthly for intervals under one hour, yearly",
        "otherwise.",
        "",
        f"{manifest.total_rows:,} rows in {sum(c.files for c in configs):,} Parquet files "
        f"({_size(sum(c.size for c in configs))}).",
        "",
        "| config | rows | files | size | first | last | exchanges | symbols |",
        "|---|---:|---:|---:|---|---|---|---|",
    ]
    for c in configs:
        lines.append(
            f"| `{c.config}` | {c.rows:,} | {c.files} | {_size(c.size)} | {_when(c.ts_min)} "
            f"| {_when(c.ts_max)} | {', '.join(c.exchanges)} | {', '.join(c.symbols)} |"
        )
    return "\n".join(lines) + "\n"


def _schemas(configs: list[ConfigStats]) -> str:
    lines = ["## Schema", ""]
    by_dataset: dict[str, list[ConfigStats]] = {}
    for c in configs:
        by_dataset.setdefault(c.dataset, []).append(c)
    for dataset, members in by_dataset.items():
        nullable = nullable_columns(SILVER_MODELS[dataset])
        names = ", ".join(f"`{m.config}`" for m in members)
        lines += [f"### {DATASET_TITLES.get(dataset, dataset)} ({names})", ""]
        lines += ["| column | type | nullable | meaning |", "|---|---|---|---|"]
        for column, type_name in members[0].columns:
            meaning = TS_MEANINGS.get(dataset, "") if column == "ts" else MEANINGS.get(column, "")
            null = "yes" if column in nullable else "no"
            lines.append(f"| `{column}` | {type_name} | {null} | {meaning} |")
        lines.append("")
    return "\n".join(lines)


def unlisted(frame: pl.DataFrame, listings: pl.DataFrame | None) -> pl.DataFrame:
    """(config, exchange, symbol, kind) of coverage rows for a symbol the exchange does not list:
    no row present on any day, and absent from the exchange's listings (an exchange without
    listings, or a dataset not judged by listing, is never judged)."""
    empty = pl.DataFrame(
        schema={"config": pl.String, "exchange": pl.String, "symbol": pl.String, "kind": pl.String}
    )
    if listings is None or listings.is_empty():
        return empty
    known = listings.select("exchange", "symbol", "kind").unique()
    judged = frame.with_columns(
        pl.col("dataset").replace_strict(DATASET_KIND, default=None).alias("kind")
    ).filter(
        pl.col("kind").is_not_null()
        & pl.col("exchange").is_in(known["exchange"].unique().to_list())
    )
    never_present = (
        judged.group_by("config", "exchange", "symbol", "kind")
        .agg(pl.col("rows_present").sum())
        .filter(pl.col("rows_present") == 0)
        .drop("rows_present")
    )
    return never_present.join(known, on=["exchange", "symbol", "kind"], how="anti").sort(
        "config", "exchange", "symbol"
    )


def _coverage(coverage: pl.DataFrame, listings: pl.DataFrame | None = None) -> str:
    frame = coverage
    if "silver" in frame["layer"].unique().to_list():
        frame = frame.filter(pl.col("layer") == "silver")
    if frame.is_empty():
        return ""
    frame = frame.with_columns(
        pl.when(pl.col("interval").is_null())
        .then(pl.col("dataset"))
        .otherwise(pl.concat_str("dataset", pl.lit("_"), "interval"))
        .alias("config")
    )
    left_out = unlisted(frame, listings)
    frame = frame.join(left_out, on=["config", "exchange", "symbol"], how="anti")
    if frame.is_empty():
        return ""
    summary = (
        frame.group_by("config", "exchange")
        .agg(
            pl.col("day").min().alias("first"),
            pl.col("day").max().alias("last"),
            pl.col("day").n_unique().alias("days"),
            pl.col("symbol").n_unique().alias("symbols"),
            pl.col("rows_present").sum(),
            pl.col("rows_expected").sum(),
            pl.col("gaps").list.len().sum().alias("gap_count"),
            pl.col("quarantined").sum(),
        )
        .sort("config", "exchange")
    )
    lines = [
        "## Coverage",
        "",
        "Rows present against the rows expected on each interval's grid, per config and exchange.",
        "Gaps are missing ranges in the exchange's own answer (maintenance, late listings).",
        _unlisted_note(left_out, listings),
        "",
        "| config | exchange | days | first | last | symbols | rows | expected | complete "
        "| gaps | quarantined |",
        "|---|---|---:|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in summary.iter_rows(named=True):
        expected = r["rows_expected"]
        share = f"{100 * r['rows_present'] / expected:.2f} %" if expected else "n/a"
        lines.append(
            f"| `{r['config']}` | {r['exchange']} | {r['days']} | {r['first']} | {r['last']} "
            f"| {r['symbols']} | {r['rows_present']:,} | {expected or 0:,} | {share} "
            f"| {r['gap_count']} | {r['quarantined'] or 0:,} |"
        )
    gaps = _largest_gaps(frame)
    if gaps.height:
        lines += ["", f"Largest gaps (up to {MAX_GAPS_LISTED}):", ""]
        lines += ["| config | exchange | symbol | from | to |", "|---|---|---|---|---|"]
        for g in gaps.iter_rows(named=True):
            lines.append(
                f"| `{g['config']}` | {g['exchange']} | {g['symbol']} "
                f"| {_when(g['start'])} | {_when(g['end'])} |"
            )
    return "\n".join(lines) + "\n"


def _unlisted_note(left_out: pl.DataFrame, listings: pl.DataFrame | None) -> str:
    if listings is None:
        return "Symbols are counted wherever they were requested (no listings were available)."
    if left_out.is_empty():
        return "Only symbols each exchange lists are counted; every requested symbol was listed."
    pairs = (
        left_out.group_by("exchange", "symbol", "kind")
        .agg(pl.col("config").sort())
        .sort("exchange", "symbol", "kind")
    )
    named = "; ".join(
        f"{r['symbol']} on {EXCHANGE_NAMES.get(r['exchange'], r['exchange'])} ({r['kind']})"
        for r in pairs.iter_rows(named=True)
    )
    return (
        "Only symbols each exchange lists are counted: left out as not listed there "
        f"(no data exists, nothing is missing): {named}."
    )


def _largest_gaps(frame: pl.DataFrame) -> pl.DataFrame:
    return (
        frame.select("config", "exchange", "symbol", "gaps")
        .explode("gaps")
        .drop_nulls("gaps")
        .unnest("gaps")
        .with_columns((pl.col("end") - pl.col("start")).alias("length"))
        .sort(
            ["length", "config", "exchange", "symbol", "start"],
            descending=[True, False, False, False, False],
        )
        .head(MAX_GAPS_LISTED)
    )


DATASET_WORDS = {"ohlcv": "candles", "funding": "funding", "open_interest": "open interest"}


def unavailable_lines(states: pl.DataFrame) -> list[dict[str, str]]:
    """The series of `states` (`storage.planning.STATE_COLUMNS`) with days unavailable at the
    source, one per exchange, dataset and symbol (intervals with the same days together), as
    card rows: exchange, dataset, symbol, since (first day with data), days, why."""
    if states.is_empty():
        return []
    gone = states.filter(pl.col("unavailable_days") > 0)
    grouped = (
        gone.group_by(
            "exchange",
            "dataset",
            "symbol",
            "first_day",
            "unavailable_days",
            "unavailable",
            maintain_order=True,
        )
        .agg(pl.col("interval").drop_nulls().unique().sort())
        .sort("exchange", "dataset", "symbol", "first_day", nulls_last=True)
    )
    rows = []
    for r in grouped.iter_rows(named=True):
        dataset = DATASET_WORDS.get(r["dataset"], r["dataset"])
        intervals = ", ".join(_by_length(r["interval"]))
        rows.append(
            {
                "exchange": EXCHANGE_NAMES.get(r["exchange"], r["exchange"]),
                "dataset": f"{dataset} {intervals}" if intervals else dataset,
                "symbol": r["symbol"],
                "since": f"from {r['first_day']}" if r["first_day"] else "no data",
                "days": f"{r['unavailable_days']:,}",
                "why": r["unavailable"] or "",
            }
        )
    return rows


def _by_length(intervals: list[str]) -> list[str]:
    order = [i.value for i in Interval]
    return sorted(intervals, key=lambda i: (order.index(i) if i in order else len(order), i))


def unavailable_section(states: pl.DataFrame) -> str:
    """`## Unavailable at the source`: per exchange, dataset and symbol, the days the exchange
    does not serve and why (before a listing, beyond the depth of its history, after a
    delisting), e.g. `OKX | open interest | BTCUSDT | from 2024-10-02 | 670 | beyond the
    source's depth (1,440 h): 2023-01-01..2024-10-01`."""
    rows = unavailable_lines(states)
    lines = [
        "## Unavailable at the source",
        "",
        "Days an exchange does not serve for a symbol (before its listing, beyond how far back",
        "the exchange's history goes, after a delisting) are not missing data: nothing more can",
        "be fetched for them. The same coverage states as `crypto-pipeline coverage` reports.",
        "",
    ]
    if not rows:
        return "\n".join([*lines, "Every recorded day was served by its exchange.", ""])
    lines += [
        "| exchange | dataset | symbol | data | days unavailable | why (days) |",
        "|---|---|---|---|---:|---|",
    ]
    for r in rows:
        cells = [r["exchange"], r["dataset"], r["symbol"], r["since"], r["days"], r["why"]]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _licence(configs: list[ConfigStats]) -> str:
    exchanges = sorted({e for c in configs for e in c.exchanges})
    lines = [
        "## Licence and sources",
        "",
        "The rows are derived from the public market-data endpoints of each exchange. The data",
        "itself remains subject to each exchange's terms of use; check them before redistributing",
        f"it or using it commercially (`{LICENCE_PATH}` names them). The pipeline code is",
        "Apache-2.0.",
        "",
    ]
    lines += [
        f"- {EXCHANGE_NAMES.get(e, e)}: {EXCHANGE_TERMS[e]}"
        for e in exchanges
        if e in EXCHANGE_TERMS
    ]
    lines += [
        "",
        "Data is provided as is, without warranty: exchanges publish gaps, late listings and",
        "occasional revisions, and the coverage section lists the known gaps.",
    ]
    return "\n".join(lines) + "\n"


def _loading(configs: list[ConfigStats], repo_id: str | None) -> str:
    config = default_config(configs) or "ohlcv_1d"
    glob = f"data/{config}/*.parquet"
    source = f'"{repo_id}"' if repo_id else '"path/to/this/folder"'
    files = f"hf://datasets/{repo_id}/{glob}" if repo_id else glob
    return "\n".join(
        [
            "## How to load",
            "",
            "With `datasets` (one config at a time):",
            "",
            "```python",
            "from datasets import load_dataset",
            "",
            f'ds = load_dataset({source}, "{config}", split="train")',
            "```",
            "",
            "With polars:",
            "",
            "```python",
            "import polars as pl",
            "",
            f'candles = pl.scan_parquet("{files}").filter(pl.col("symbol") == "BTCUSDT").collect()',
            "```",
            "",
            "With DuckDB:",
            "",
            "```sql",
            "SELECT exchange, date_trunc('month', ts) AS month, avg(close) AS avg_close",
            f"FROM '{files}'",
            "WHERE symbol = 'BTCUSDT'",
            "GROUP BY ALL ORDER BY ALL;",
            "```",
            "",
        ]
    )


def _when(moment: datetime | object | None) -> str:
    if moment is None:
        return "–"
    if isinstance(moment, datetime):
        return moment.strftime("%Y-%m-%d %H:%M UTC")
    return str(moment)


def _size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"
