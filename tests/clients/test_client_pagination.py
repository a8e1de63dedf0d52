"""Pagination state machines against in-memory models of each exchange's paging rules."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clients.pagination import (
    AscendingCursor,
    CoinbaseWindows,
    DescendingCursor,
    PaginationError,
    Paginator,
    Params,
    iso_ms,
    plan_windows,
    window_params,
)

MINUTE = 60_000


# -- in-memory exchanges -------------------------------------------------------------------


def binance_page(rows: list[int], params: Params) -> list[int]:
    """startTime/endTime inclusive, ascending, the first `limit` rows."""
    lo = bisect_left(rows, int(params["startTime"]))
    hi = bisect_right(rows, int(params["endTime"]))
    return rows[lo:hi][: int(params["limit"])]


def okx_page(
    rows: list[int], params: Params, upper: str = "after", lower: str = "before"
) -> list[int]:
    """`after`/`before` both exclusive, newest first, the newest `limit` rows."""
    hi = bisect_left(rows, int(params[upper]))
    lo = bisect_right(rows, int(params[lower])) if lower in params else 0
    return rows[lo:hi][::-1][: int(params["limit"])]


def coinbase_page(rows: list[int], params: Params) -> list[int]:
    """ISO start/end inclusive, at most 300 buckets, newest first."""
    start = int(datetime.fromisoformat(str(params["start"]).replace("Z", "+00:00")).timestamp())
    end = int(datetime.fromisoformat(str(params["end"]).replace("Z", "+00:00")).timestamp())
    granularity = int(params["granularity"])
    if (end - start) // granularity + 1 > 300:
        raise AssertionError("Count of aggregations requested exceeds 300")
    lo, hi = bisect_left(rows, start * 1000), bisect_right(rows, end * 1000)
    return rows[lo:hi][::-1]


def drain(pager: Paginator, serve, max_pages: int = 10_000) -> tuple[list[int], int]:
    received: list[int] = []
    while not pager.done:
        assert pager.pages < max_pages, "paginator does not terminate"
        page = serve(pager.params())
        pager.advance(page)
        received.extend(page)
    return received, pager.pages


def in_window(rows: list[int], start: int, end: int) -> list[int]:
    return [r for r in rows if start <= r < end]


# -- table-driven --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n_rows", "limit", "expected_pages"),
    [
        (1440, 1000, 2),  # a day of 1m klines: full page, then a short one
        (1000, 1000, 1),  # exactly one full page: the cursor passes the window end
        (0, 1000, 1),  # nothing listed: one empty page
        (5, 2, 3),
    ],
)
def test_ascending_cursor_pages(n_rows: int, limit: int, expected_pages: int) -> None:
    rows = [i * MINUTE for i in range(n_rows)]
    end = 1440 * MINUTE if n_rows > 1000 else n_rows * MINUTE or MINUTE
    pager = AscendingCursor(0, end, limit=limit, step=MINUTE)
    received, pages = drain(pager, lambda p: binance_page(rows, p))
    assert received == rows
    assert pages == expected_pages


def test_ascending_cursor_params_are_inclusive_bounds() -> None:
    pager = AscendingCursor(1_000, 5_000, limit=10)
    assert pager.params() == {"startTime": 1_000, "endTime": 4_999, "limit": 10}
    pager.advance(list(range(1_000, 2_000, 100)))
    assert pager.params()["startTime"] == 1_901
    assert not pager.done


@pytest.mark.parametrize(
    ("n_rows", "limit", "expected_pages"),
    [
        (1440, 300, 5),  # a day of OKX 1m history-candles
        (1440, 100, 15),  # rubik-sized pages
        (300, 300, 1),  # full page reaching the window start
        (0, 300, 1),
    ],
)
def test_descending_cursor_pages(n_rows: int, limit: int, expected_pages: int) -> None:
    rows = [i * MINUTE for i in range(n_rows)]
    end = max(n_rows, 1) * MINUTE
    received, pages = drain(DescendingCursor(0, end, limit=limit), lambda p: okx_page(rows, p))
    assert sorted(received) == rows
    assert pages == expected_pages


def test_descending_cursor_stops_at_listing_date() -> None:
    # Listed 100 minutes into a 1440-minute window: the last page comes back short.
    rows = [i * MINUTE for i in range(100, 1440)]
    received, _ = drain(DescendingCursor(0, 1440 * MINUTE, limit=300), lambda p: okx_page(rows, p))
    assert sorted(received) == rows


def test_cursors_refuse_pages_without_progress() -> None:
    asc = AscendingCursor(1_000, 5_000, limit=2)
    with pytest.raises(PaginationError):
        asc.advance([500, 600])
    desc = DescendingCursor(1_000, 5_000, limit=2)
    with pytest.raises(PaginationError):
        desc.advance([5_000, 6_000])


def test_empty_window_needs_no_request() -> None:
    assert AscendingCursor(10, 10, limit=5).done
    assert DescendingCursor(10, 5, limit=5).done
    assert CoinbaseWindows(10, 10, granularity_ms=MINUTE).done


def test_invalid_limits_fail_fast() -> None:
    with pytest.raises(ValueError):
        AscendingCursor(0, 10, limit=0)
    with pytest.raises(ValueError):
        CoinbaseWindows(0, 10, granularity_ms=MINUTE, buckets=301)


def test_coinbase_day_of_minutes_is_five_windows_newest_first() -> None:
    day = 86_400_000
    pager = CoinbaseWindows(0, day, granularity_ms=MINUTE)
    windows = pager.windows()
    assert len(windows) == 5
    assert windows[0].end == day and windows[-1].start == 0
    assert pager.params() == {
        "granularity": 60,
        "start": "1970-01-01T20:00:00.000Z",
        "end": "1970-01-01T23:59:00.000Z",
    }


def test_window_params_end_is_last_bucket_open() -> None:
    params = window_params(plan_windows(0, 300 * MINUTE, step=MINUTE, per_request=300)[0], MINUTE)
    assert params["end"] == iso_ms(299 * MINUTE)


def test_plan_windows_aligns_to_open_times() -> None:
    windows = plan_windows(30_000, 3 * MINUTE, step=MINUTE, per_request=1)
    assert [(w.start, w.end) for w in windows] == [(MINUTE, 2 * MINUTE), (2 * MINUTE, 3 * MINUTE)]


def test_iso_ms_formats_leap_day() -> None:
    ms = int(datetime.fromisoformat("2024-02-29T23:59:00+00:00").timestamp() * 1000)
    assert iso_ms(ms) == "2024-02-29T23:59:00.000Z"


# -- properties ----------------------------------------------------------------------------

steps = st.sampled_from([MINUTE, 5 * MINUTE, 3_600_000])


@st.composite
def series(draw: st.DrawFn, aligned: bool) -> tuple[list[int], int, int, int]:
    step = draw(steps) if aligned else 1
    n = draw(st.integers(0, 3_000))
    present = draw(st.lists(st.integers(0, n), max_size=400, unique=True)) if n else []
    rows = sorted(
        {i * step for i in present}
        if not aligned
        else {i * step for i in range(n)} - {i * step for i in present[: len(present) // 2]}
    )
    start = draw(st.integers(-5 * step, (n + 5) * step))
    end = draw(st.integers(start, (n + 10) * step))
    return rows, start, end, step


@settings(max_examples=150, deadline=None)
@given(data=series(aligned=True), limit=st.integers(1, 1000))
def test_planned_windows_with_ascending_cursor_cover_window_once(
    data: tuple[list[int], int, int, int], limit: int
) -> None:
    rows, start, end, step = data
    received: list[int] = []
    for window in plan_windows(start, end, step=step, per_request=limit):
        got, _ = drain(
            AscendingCursor(window.start, window.end, limit=limit, step=step),
            lambda p: binance_page(rows, p),
        )
        received += in_window(got, window.start, window.end)
    assert received == in_window(rows, start, end)


@settings(max_examples=150, deadline=None)
@given(data=series(aligned=False), limit=st.integers(1, 500))
def test_ascending_cursor_covers_irregular_series_once(
    data: tuple[list[int], int, int, int], limit: int
) -> None:
    rows, start, end, _ = data
    got, pages = drain(AscendingCursor(start, end, limit=limit), lambda p: binance_page(rows, p))
    expected = in_window(rows, start, end)
    assert in_window(got, start, end) == expected
    assert pages <= len(expected) // limit + 1


@settings(max_examples=150, deadline=None)
@given(data=series(aligned=False), limit=st.integers(1, 400), bounded=st.booleans())
def test_descending_cursor_covers_window_once(
    data: tuple[list[int], int, int, int], limit: int, bounded: bool
) -> None:
    rows, start, end, _ = data
    pager = DescendingCursor(start, end, limit=limit, lower_key="before" if bounded else None)
    got, pages = drain(pager, lambda p: okx_page(rows, p))
    expected = in_window(rows, start, end)
    assert sorted(in_window(got, start, end)) == expected
    assert len(set(got)) == len(got)
    assert pages <= len(expected) // limit + 2


@settings(max_examples=100, deadline=None)
@given(data=series(aligned=True), buckets=st.integers(1, 300))
def test_coinbase_windows_cover_window_once(
    data: tuple[list[int], int, int, int], buckets: int
) -> None:
    rows, start, end, step = data
    got, _ = drain(
        CoinbaseWindows(start, end, granularity_ms=step, buckets=buckets),
        lambda p: coinbase_page(rows, p),
    )
    assert sorted(in_window(got, start, end)) == in_window(rows, start, end)
    assert len(set(got)) == len(got)


def okx_page_withheld(grid: list[int], withheld: set[int], params: Params) -> list[int]:
    """Rows withheld after the page is selected (the sandbox's empty days): short/empty pages."""
    return [t for t in okx_page(grid, params) if t not in withheld]


def test_grid_cursor_walks_past_an_empty_stretch() -> None:
    grid = [i * MINUTE for i in range(3 * 1440)]
    withheld = {t for t in grid if 1440 * MINUTE <= t < 2880 * MINUTE}
    pager = DescendingCursor(0, 3 * 1440 * MINUTE, limit=300, step=MINUTE)
    got, pages = drain(pager, lambda p: okx_page_withheld(grid, withheld, p))
    assert sorted(got) == [t for t in grid if t not in withheld]
    assert pages == 15  # 3 days of 1440 minutes in windows of 300


@settings(max_examples=150, deadline=None)
@given(
    data=series(aligned=True),
    limit=st.integers(1, 300),
    withheld_from=st.integers(0, 3_000),
    withheld_len=st.integers(0, 1_500),
    sandbox_semantics=st.booleans(),
)
def test_grid_cursor_covers_window_once(
    data: tuple[list[int], int, int, int],
    limit: int,
    withheld_from: int,
    withheld_len: int,
    sandbox_semantics: bool,
) -> None:
    rows, start, end, step = data
    hidden = {t for t in rows if withheld_from * step <= t < (withheld_from + withheld_len) * step}
    if sandbox_semantics:

        def serve(p: Params) -> list[int]:
            return okx_page_withheld(rows, hidden, p)
    else:
        visible = [t for t in rows if t not in hidden]

        def serve(p: Params) -> list[int]:
            return okx_page(visible, p)

    got, pages = drain(DescendingCursor(start, end, limit=limit, step=step), serve)
    expected = [t for t in in_window(rows, start, end) if t not in hidden]
    assert sorted(in_window(got, start, end)) == expected
    assert len(set(got)) == len(got)
    assert pages <= max(1, -(-(end - start) // (limit * step)))
