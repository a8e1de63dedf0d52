"""The dataset's licence file (`LICENSE.md`): the terms of each exchange the data comes from.

The card's `license: other` links to it (`license_link`), as the Hub's card metadata expects for
a licence not in its list.
"""

from __future__ import annotations

from collections.abc import Iterable

LICENCE_PATH = "LICENSE.md"
LICENCE_NAME = "exchange-terms"
EXCHANGE_NAMES = {"binance": "Binance", "coinbase": "Coinbase Exchange", "okx": "OKX"}
EXCHANGE_TERMS = {
    "binance": "https://www.binance.com/en/terms",
    "coinbase": "https://www.coinbase.com/legal/user_agreement",
    "okx": "https://www.okx.com/help/terms-of-service",
}


def render_licence(exchanges: Iterable[str]) -> str:
    """`LICENSE.md` for data from `exchanges`: each one's name and terms of use."""
    lines = [
        "# Licence: exchange terms",
        "",
        "This dataset is derived from the public market-data endpoints of the exchanges below.",
        "No licence is granted beyond theirs: the data remains subject to each exchange's terms",
        "of use, which govern redistribution and commercial use. Read them before either.",
        "",
    ]
    for exchange in sorted(set(exchanges)):
        name = EXCHANGE_NAMES.get(exchange, exchange)
        terms = EXCHANGE_TERMS.get(exchange, "see the exchange's website")
        lines.append(f"- {name}: {terms}")
    lines += [
        "",
        "The software that built it (crypto-pipeline) is licensed under Apache-2.0; that licence",
        "does not extend to the data.",
    ]
    return "\n".join(lines) + "\n"
