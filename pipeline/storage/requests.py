"""Many small requests to an object store at once: each costs a round trip, one after another they add up."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

T = TypeVar("T")
IN_FLIGHT = 32  # requests at once: enough to hide round trips, few enough not to be throttled


def each(fn: Callable[[Any], T], items: Iterable[Any], remote: bool) -> list[T]:
    """`[fn(x) for x in items]`, in order; by a pool of threads when the items live on an object store."""
    items = list(items)
    if not remote or len(items) < 2:
        return [fn(x) for x in items]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=IN_FLIGHT) as pool:
        return list(pool.map(fn, items))
