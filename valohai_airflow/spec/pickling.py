"""Cheaper pickles for the frozen dataclasses a plan is made of.

A plan is pickled once per edit and unpickled on every parse of a fresh DAG processor or worker
process. A frozen slots dataclass pickles through its generated `__getstate__`/`__setstate__`, which
look the fields up again and set them one by one from Python for every object; a plan of 1,000 nodes
holds ~10,000 such objects. Pickling each as a call of its class with its init fields halves both
directions (and recomputes `init=False` fields, which are derived, in `__post_init__`).
"""

from __future__ import annotations

import dataclasses
import operator
from typing import Any, TypeVar, cast

_Class = TypeVar("_Class", bound=type)


def pickled_by_fields(cls: _Class) -> _Class:
    """Class decorator (outside `@dataclass`): pickle instances as `cls(*init_fields)`."""
    names = tuple(f.name for f in dataclasses.fields(cast(Any, cls)) if f.init)
    if len(names) < 2:
        raise TypeError(f"{cls.__name__}: pickled_by_fields needs two or more init fields")
    values = operator.attrgetter(*names)

    def __reduce__(self: object) -> tuple[type, tuple[Any, ...]]:
        return cls, values(self)

    cls.__reduce__ = __reduce__  # type: ignore[assignment]
    return cls
