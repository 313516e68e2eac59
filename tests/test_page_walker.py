"""The inbox walk's bookkeeping, without a server or a database (bridge.sync.pull.PageWalker)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bridge.lapor.models import Page, RemoteComplaint
from bridge.sync.pull import PageWalker, PaginationError

T0 = datetime(2026, 10, 1, 8, 0, tzinfo=UTC)


def item(id_: int, second: int) -> RemoteComplaint:
    return RemoteComplaint.model_construct(id=id_, updated_at=T0 + timedelta(seconds=second))


def page(*items: RemoteComplaint, more: bool = True) -> Page[RemoteComplaint]:
    return Page[RemoteComplaint](items=list(items), next_page_url="next" if more else None)


def test_moves_since_to_the_last_item_and_skips_what_it_read() -> None:
    walk = PageWalker(None)
    fresh, last = walk.step(page(item(1, 0), item(2, 5)))
    assert [i.id for i in fresh] == [1, 2] and not last
    assert (walk.since, walk.page) == (T0 + timedelta(seconds=5), 1)
    fresh, last = walk.step(page(item(2, 5), item(3, 9), more=False))
    assert [i.id for i in fresh] == [3] and last


def test_a_shared_second_is_stepped_through_by_page_and_read_again_when_one_moves() -> None:
    walk = PageWalker(T0)
    walk.step(page(item(1, 0), item(2, 0)))
    assert (walk.since, walk.page) == (T0, 2)
    walk.step(page(item(3, 0), item(4, 0)))
    assert walk.page == 3 and walk.tie_ids[T0] == {1, 2, 3, 4}
    walk.step(page(item(5, 0), item(2, 7), more=False))  # 2 changed meanwhile
    assert walk.rescan == {T0}


def test_looping_and_empty_pages_are_refused() -> None:
    walk = PageWalker(T0)
    walk.step(page(item(1, 0), item(2, 0)))
    with pytest.raises(PaginationError, match="repeats the previous page"):
        walk.step(page(item(1, 0), item(2, 0)))
    with pytest.raises(PaginationError, match="an empty page 1 with a next link"):
        PageWalker(T0).step(page())
