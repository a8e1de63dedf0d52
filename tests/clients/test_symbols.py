"""User symbols (`models.symbols.validate_symbol`): real pairs, one-letter bases included, are
accepted in every spelling; bad input is refused with an `InputError` naming the culprit."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.errors import InputError
from models.symbols import (
    KNOWN_QUOTES,
    MAX_BASE_LENGTH,
    parse_symbols,
    split_symbol,
    validate_symbol,
)


@pytest.mark.parametrize(
    ("raw", "unified"),
    [
        ("SUSDT", "SUSDT"),  # Sonic, the FTM -> S rename's target
        ("s-usdt", "SUSDT"),
        ("S/USDC", "SUSDC"),
        ("SUSD", "SUSD"),  # Coinbase's S-USD
        ("TUSDT", "TUSDT"),  # Threshold
        ("BTCUSDT", "BTCUSDT"),
        (" btc-usdt ", "BTCUSDT"),
        ("ETH/BTC", "ETHBTC"),
        ("1INCHUSDT", "1INCHUSDT"),
        ("1000SATSUSDT", "1000SATSUSDT"),
        ("POLUSDT", "POLUSDT"),
        ("FDUSDUSDT", "FDUSDUSDT"),
        ("XFDUSD", "XFDUSD"),
    ],
)
def test_real_pairs_are_accepted(raw: str, unified: str) -> None:
    assert validate_symbol(raw) == unified


def test_one_letter_bases_split_back() -> None:
    assert split_symbol(validate_symbol("SUSDT")) == ("S", "USDT")
    assert split_symbol(validate_symbol("S-ETH")) == ("S", "ETH")
    assert parse_symbols("SUSDT,FTMUSDT,s-usdt") == ["SUSDT", "FTMUSDT"]


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("USDT", "quote currency alone"),
        ("BUSD", "quote currency alone"),  # not B + USD
        ("fdusd", "quote currency alone"),  # not FD + USD
        ("S", "no known quote"),
        ("BTC", "quote currency alone"),
        ("XYZ", "no known quote"),
        ("-USDT", "base ''"),
        ("BTC-", "unknown quote ''"),
        ("BTC-XYZ", "unknown quote 'XYZ'"),
        ("XB-USD", "ambiguous"),  # XBUSD reads as X + BUSD
        ("BTC/USDT/EUR", "more than one separator"),
        ("BTC USDT", "' '"),
        ("BTC\nUSDT", "'\\n'"),
        ("../x", "'.'"),
        ("ßUSDT", "'ß'"),  # upper-cases to SSUSDT: refused before that
        ("BTC\u0421USDT", "'\u0421'"),  # Cyrillic Es
        ("ABCDEFGHIJKLMUSDT", "base 'ABCDEFGHIJKLM'"),
        ("", "empty"),
        ("   ", "empty"),
        ("X" * 30, "longer than"),
    ],
)
def test_bad_input_is_refused_naming_the_culprit(raw: str, why: str) -> None:
    with pytest.raises(InputError) as caught:
        validate_symbol(raw)
    message = str(caught.value)
    assert why in message
    assert repr(raw if len(raw) <= 40 else raw[:40] + "...") in message


def test_not_text_is_refused() -> None:
    with pytest.raises(InputError, match="must be text"):
        validate_symbol(42)  # type: ignore[arg-type]


BASES = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=1, max_size=MAX_BASE_LENGTH
)


@settings(max_examples=200, deadline=None)
@given(base=BASES, quote=st.sampled_from(KNOWN_QUOTES), sep=st.sampled_from(["-", "/"]))
def test_separated_pairs_round_trip_or_are_refused(base: str, quote: str, sep: str) -> None:
    """Invariant: a separated pair is accepted exactly when its unified form splits back into
    the same base and quote (else refused as ambiguous); accepted ones round-trip."""
    raw = f"{base.lower()}{sep}{quote}"
    try:
        unified = validate_symbol(raw)
    except InputError as exc:
        assert raw in str(exc)
        joined = base + quote
        assert joined in KNOWN_QUOTES or split_symbol(joined) != (base, quote)
        return
    assert unified == base + quote
    assert split_symbol(unified) == (base, quote)
    assert validate_symbol(unified) == unified  # idempotent


@settings(max_examples=300, deadline=None)
@given(raw=st.text(max_size=30))
def test_any_text_is_a_valid_symbol_or_a_named_refusal(raw: str) -> None:
    """Invariant: whatever the input, the answer is a symbol of letters and digits that splits
    into a base and a known quote, or an `InputError` showing the input."""
    try:
        unified = validate_symbol(raw)
    except InputError as exc:
        assert repr(raw if len(raw) <= 40 else raw[:40] + "...") in str(exc)
        return
    assert unified.isascii() and unified.isalnum() and unified == unified.upper()
    base, quote = split_symbol(unified)
    assert quote in KNOWN_QUOTES and 1 <= len(base) <= MAX_BASE_LENGTH


@pytest.mark.parametrize("raw", ["B-USD", "b/usd", "FD-USD"])
def test_a_pair_that_unifies_to_a_quote_currency_is_refused(raw: str) -> None:
    with pytest.raises(InputError, match="is a quote currency"):
        validate_symbol(raw)
