"""Unified symbols: BASE+QUOTE upper-case with no separator (BTCUSDT)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from models.errors import InputError

# Quote currencies we recognise, longest first so that "USDT" wins over "USD".
KNOWN_QUOTES: tuple[str, ...] = ("USDT", "USDC", "FDUSD", "BUSD", "USD", "EUR", "BTC", "ETH")
DEFAULT_QUOTE = "USDT"

MAX_SYMBOL_LENGTH = 20
MAX_BASE_LENGTH = 12
_BASE_RE = re.compile(rf"^[A-Z0-9]{{1,{MAX_BASE_LENGTH}}}$")
_ALLOWED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-/")


def validate_symbol(raw: str) -> str:
    """Return the unified symbol for user input, or raise `InputError` naming it.

    Accepts `btcusdt`, `BTC-USDT`, `BTC/USDT`, and one-letter bases such as `SUSDT` or `S-USDT`
    (Sonic, FTM's successor); refuses anything with other characters (path separators,
    control characters, spaces), of unreasonable length, a quote currency alone (`USDT`,
    `BUSD`), and a separated pair that would read back as another (`XB-USD` unifies to
    `XBUSD`, which splits as X + BUSD). Every accepted symbol splits back (`split_symbol`)
    into the base and quote it was given as.
    """
    if not isinstance(raw, str):
        raise InputError(f"symbol must be text, got {type(raw).__name__}")
    shown = raw if len(raw) <= 40 else raw[:40] + "..."
    if len(raw) > MAX_SYMBOL_LENGTH + 2:
        raise InputError(f"malformed symbol {shown!r}: longer than {MAX_SYMBOL_LENGTH} characters")
    stripped = raw.strip()
    expected = (
        f"expected BASE+QUOTE such as BTCUSDT or S-USDT "
        f"(letters and digits, quote one of {', '.join(KNOWN_QUOTES)})"
    )
    # Checked before upper-casing: "ß".upper() is "SS", which would pass.
    bad = next((c for c in stripped if c not in _ALLOWED), None)
    if bad is not None:
        raise InputError(f"malformed symbol {shown!r}: character {bad!r} not allowed; {expected}")
    text = stripped.upper()
    if not text:
        raise InputError(f"malformed symbol {shown!r}: empty; {expected}")
    parts = re.split(r"[-/]", text)
    if len(parts) > 2:
        raise InputError(f"malformed symbol {shown!r}: more than one separator; {expected}")
    if len(parts) == 2:
        base, quote = parts
        if quote not in KNOWN_QUOTES:
            raise InputError(f"malformed symbol {shown!r}: unknown quote {quote!r}; {expected}")
    else:
        if text in KNOWN_QUOTES:
            raise InputError(
                f"malformed symbol {shown!r}: a quote currency alone, not a pair; {expected}"
            )
        quote = next((q for q in KNOWN_QUOTES if text.endswith(q) and len(text) > len(q)), "")
        if not quote:
            raise InputError(f"malformed symbol {shown!r}: no known quote at its end; {expected}")
        base = text[: -len(quote)]
    if not _BASE_RE.match(base):
        raise InputError(
            f"malformed symbol {shown!r}: base {base!r} must be 1 to {MAX_BASE_LENGTH} "
            f"letters or digits; {expected}"
        )
    candidate = base + quote
    if candidate in KNOWN_QUOTES:  # B-USD, FD-USD: the pair unifies to a quote currency
        raise InputError(
            f"malformed symbol {shown!r}: ambiguous, {candidate} is a quote currency, "
            f"not {base} + {quote}"
        )
    if split_symbol(candidate) != (base, quote):
        other = split_symbol(candidate)
        raise InputError(
            f"malformed symbol {shown!r}: ambiguous, {candidate} reads as "
            f"{other[0]} + {other[1]}, not {base} + {quote}"
        )
    return candidate


def split_symbol(symbol: str) -> tuple[str, str]:
    """Split a unified symbol into (base, quote)."""
    for quote in KNOWN_QUOTES:
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return symbol[: -len(quote)], quote
    raise InputError(f"cannot split symbol {symbol!r} into base and quote")


def unify(base: str, quote: str) -> str:
    """Unified symbol from an exchange's base and quote asset codes."""
    return f"{base.upper()}{quote.upper()}"


def parse_symbols(values: str | Sequence[str]) -> list[str]:
    """Parse a comma-separated string or list of symbols, refusing the first malformed one."""
    raw = values.split(",") if isinstance(values, str) else list(values)
    out: list[str] = []
    for item in raw:
        if isinstance(item, str) and not item.strip():
            continue
        symbol = validate_symbol(item)
        if symbol not in out:
            out.append(symbol)
    if not out:
        raise InputError("no symbol given")
    return out


@dataclass(frozen=True)
class UniverseRule:
    """A symbol rule instead of names: `top:N` (the N pairs with the largest 24 h quote
    volume, quote USDT unless `top:N:QUOTE`) or `all:QUOTE` (every trading pair of QUOTE)."""

    rule: str  # top | all
    quote: str
    count: int | None = None

    def __str__(self) -> str:
        if self.rule == "all":
            return f"all:{self.quote}"
        return f"top:{self.count}" + ("" if self.quote == DEFAULT_QUOTE else f":{self.quote}")


MAX_TOP = 1000
_RULE_RE = re.compile(r"^(TOP):([0-9]{1,4})(?::([A-Z]{2,6}))?$|^(ALL):([A-Z]{2,6})$")


def is_rule(raw: str) -> bool:
    return isinstance(raw, str) and ":" in raw


def parse_rule(raw: str) -> UniverseRule:
    """`top:N`, `top:N:QUOTE` or `all:QUOTE` (case-insensitive); else `InputError` naming it."""
    text = raw.strip().upper() if isinstance(raw, str) else ""
    match = _RULE_RE.match(text)
    if not match:
        raise InputError(
            f"malformed symbol rule {raw!r}: expected top:N, top:N:QUOTE or all:QUOTE "
            f"(quote one of {', '.join(KNOWN_QUOTES)})"
        )
    if match.group(4):
        quote, count = match.group(5), None
    else:
        quote, count = match.group(3) or DEFAULT_QUOTE, int(match.group(2))
        if not 1 <= count <= MAX_TOP:
            raise InputError(f"symbol rule {raw!r}: N must be between 1 and {MAX_TOP}")
    if quote not in KNOWN_QUOTES:
        raise InputError(f"symbol rule {raw!r}: quote must be one of {', '.join(KNOWN_QUOTES)}")
    return UniverseRule("all" if match.group(4) else "top", quote, count)
