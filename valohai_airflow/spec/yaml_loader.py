"""YAML text to plain Python data that remembers where every value came from.

PyYAML's own loaders drop positions, silently accept duplicate keys and happily expand
billion-laughs documents, so this module builds the data itself from the (C) event stream:
no recursion, a size limit before parsing, a depth limit and a budget for alias expansion.
Scalars are resolved exactly like ``yaml.safe_load`` does (YAML 1.1: ``yes``/``no``/``on``/``off``
are booleans, ``1e-4`` is a string), so the data matches what valohai-yaml sees.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.resolver import Resolver

from valohai_airflow.spec.diagnostics import Diagnostic, Location, Severity, ValohaiSpecError, shown

try:
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - only without libyaml
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

MAX_BYTES = 10 * 1024 * 1024
MAX_DEPTH = 64
MAX_NODES = 1_000_000

_LINE_BREAKS = ("\r", "\n", "\x85", "\u2028", "\u2029")
_LINE_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")

_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MERGE_TAG = "tag:yaml.org,2002:merge"

PathItem = str | int
Path = tuple[Any, ...]


class YamlMap(dict[Any, Any]):
    """A mapping from the file; knows where it starts and where each key and value is."""

    location: Location
    key_locations: dict[Any, Location]
    value_locations: dict[Any, Location]

    def __init__(self, location: Location) -> None:
        super().__init__()
        self.location = location
        self.key_locations = {}
        self.value_locations = {}

    def __reduce__(self) -> tuple[Any, ...]:
        return (dict, (dict(self),))


class YamlList(list[Any]):
    """A sequence from the file; knows where it starts and where each item is."""

    location: Location
    item_locations: list[Location]

    def __init__(self, location: Location) -> None:
        super().__init__()
        self.location = location
        self.item_locations = []

    def __reduce__(self) -> tuple[Any, ...]:
        return (list, (list(self),))


@dataclass(frozen=True)
class LoadedYaml:
    """The document's data (located containers: `locate` finds where any part of it is) and its file."""

    data: Any
    filename: str


def locate(data: Any, path: Path, fallback: Location) -> Location:
    """Walk ``path`` through located containers; parts that do not exist (e.g. pydantic union tags) are skipped."""
    current = data
    found = data.location if isinstance(data, YamlMap | YamlList) else fallback
    for part in path:
        if isinstance(current, YamlMap) and _has_key(current, part):
            found = current.value_locations.get(part, found)
            current = current[part]
        elif isinstance(current, YamlList) and isinstance(part, int) and 0 <= part < len(current):
            found = current.item_locations[part]
            current = current[part]
    return found


def key_location(data: Any, path: Path, fallback: Location) -> Location:
    """Location of the key that holds ``path`` (better than its value for 'unknown key' messages)."""
    if not path:
        return fallback
    parent = walk(data, path[:-1])
    if isinstance(parent, YamlMap) and _has_key(parent, path[-1]):
        return parent.key_locations.get(path[-1], fallback)
    return locate(data, path, fallback)


def walk(data: Any, path: Path) -> Any:
    """The value at ``path``, skipping parts that do not exist; None if the walk cannot go on."""
    current = data
    for part in path:
        if (isinstance(current, dict) and _has_key(current, part)) or (
            isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current)
        ):
            current = current[part]
    return current


def _has_key(mapping: dict[Any, Any], key: Any) -> bool:
    try:
        return key in mapping
    except TypeError:
        return False


def load_yaml(text: str | bytes, filename: str) -> LoadedYaml:
    """Parse one YAML document; raises ValohaiSpecError (with file:line:col) on anything unusable."""
    if isinstance(text, bytes):
        if len(text) > MAX_BYTES:
            raise _error(
                filename, f"file is {len(text)} bytes; refusing to parse more than {MAX_BYTES} bytes"
            )
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            before = exc.object[: exc.start].decode("utf-8-sig")
            raise _error(
                filename,
                f"file is not UTF-8 text ({exc.reason}: byte {exc.object[exc.start]:#04x} at offset {exc.start})",
                location_at(filename, before, len(before)),
            ) from None
    elif len(text) > MAX_BYTES:
        raise _error(filename, f"file is {len(text)} characters; refusing to parse more than {MAX_BYTES}")
    if not text.strip():
        raise _error(
            filename,
            "file is empty; a valohai.yaml is a list of step/pipeline/... items",
            Location(filename, 1, 1),
        )
    builder = _Builder(filename)
    try:
        loader = _Loader(text)
    except UnicodeEncodeError as exc:  # a str with a lone surrogate: no file on disk holds one
        raise _error(
            filename, f"text is not valid Unicode ({exc.reason})", location_at(filename, text, exc.start)
        ) from None
    try:
        builder.build(loader)
    except yaml.reader.ReaderError as exc:
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        raise _error(
            filename,
            f"not valid YAML: character #x{code:04x} is not allowed ({exc.reason})",
            location_at(filename, text, _character_index(text, exc)),
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        location = _location(filename, mark) if mark is not None else Location(filename, 1, 1)
        problem = getattr(exc, "problem", None) or str(exc)
        context = getattr(exc, "context", None)
        message = f"not valid YAML: {context + ', ' if context else ''}{problem}"
        raise ValohaiSpecError([Diagnostic(Severity.ERROR, message, location)]) from None
    finally:
        loader.dispose()
    if builder.documents == 0 or builder.result is None:
        raise _error(
            filename,
            "file has no content; a valohai.yaml is a list of step/pipeline/... items",
            Location(filename, 1, 1),
        )
    return LoadedYaml(builder.result, filename)


def location_at(filename: str, text: str, index: int) -> Location:
    """Line and column (from 1) of the character at `index` of `text`, with YAML's line breaks."""
    before = text[:index]
    line_start = max(map(before.rfind, _LINE_BREAKS)) + 1
    return Location(filename, 1 + len(_LINE_BREAK.findall(before)), index - line_start + 1)


def _character_index(text: str, exc: yaml.reader.ReaderError) -> int:
    """The reader's position as an index into `text`: libyaml counts bytes of the UTF-8 it was
    given, PyYAML's own reader characters (`encoding` says which read a str)."""
    if exc.encoding == "unicode":
        return int(exc.position)
    return len(text.encode("utf-8")[: exc.position].decode("utf-8", "ignore"))


def _error(filename: str, message: str, location: Location | None = None) -> ValohaiSpecError:
    return ValohaiSpecError([Diagnostic(Severity.ERROR, message, location or Location(filename))])


def _location(filename: str, mark: Any) -> Location:
    return Location(filename, mark.line + 1, mark.column + 1)


class _Frame:
    __slots__ = (
        "anchor",
        "container",
        "item_locations",
        "key",
        "key_location",
        "merges",
        "weight",
    )

    def __init__(self, container: YamlMap | YamlList, anchor: str | None) -> None:
        self.container = container
        self.item_locations = container.item_locations if isinstance(container, YamlList) else None
        self.anchor = anchor
        self.key: Any = _NO_KEY
        self.key_location: Location | None = None
        self.merges: list[YamlMap] = []
        self.weight = 1


_NO_KEY = object()
_MISSING = object()
_SCALAR, _ALIAS = yaml.ScalarEvent, yaml.AliasEvent
_MAPPING_START, _MAPPING_END = yaml.MappingStartEvent, yaml.MappingEndEvent
_SEQUENCE_START, _SEQUENCE_END = yaml.SequenceStartEvent, yaml.SequenceEndEvent
_DOCUMENT_START = yaml.DocumentStartEvent


class _Builder:
    """Turns parser events into YamlMap/YamlList/scalars with an explicit stack (no recursion)."""

    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.stack: list[_Frame] = []
        self.anchors: dict[str, tuple[Any, int]] = {}
        self.nodes = 0
        self.documents = 0
        self.result: Any = None
        self.constructor = SafeConstructor()
        self.resolver = Resolver()
        self.scalars: dict[tuple[str | None, str, tuple[bool, bool]], Any] = {}

    def build(self, loader: Any) -> None:
        """Consume the loader's events. The loop a parse spends its time in: a plain scalar (most
        events) is resolved, counted, located and stored here without a call of ours."""
        filename, stack, scalars, anchors = self.filename, self.stack, self.scalars, self.anchors
        get_event = loader.get_event
        while (event := get_event()) is not None:
            kind = type(event)
            if kind is _SCALAR:
                key = (event.tag, event.value, event.implicit)
                value = scalars.get(key, _MISSING)
                if value is _MISSING:
                    value = self._construct(event)
                    if isinstance(value, _IMMUTABLE_SCALARS):
                        scalars[key] = value
                self._count(1, event)
                if event.anchor is not None:
                    anchors[event.anchor] = (value, 1)
                mark = event.start_mark
                location = Location(filename, mark.line + 1, mark.column + 1)
                frame = stack[-1] if stack else None
                if frame is None or isinstance(value, _MergeKey):
                    self._add(value, 1, location)
                elif frame.item_locations is not None:  # a sequence
                    frame.weight += 1
                    frame.container.append(value)  # type: ignore[union-attr]
                    frame.item_locations.append(location)
                elif frame.key is _NO_KEY:
                    frame.weight += 1
                    frame.key = value
                    frame.key_location = location
                else:
                    self._add(value, 1, location)
            elif kind is _MAPPING_START or kind is _SEQUENCE_START:
                self._check_collection_tag(event)
                mark = event.start_mark
                location = Location(filename, mark.line + 1, mark.column + 1)
                container: YamlMap | YamlList = (
                    YamlMap(location) if kind is _MAPPING_START else YamlList(location)
                )
                if len(stack) >= MAX_DEPTH:
                    raise _error(filename, f"nesting deeper than {MAX_DEPTH} levels", location)
                self._count(1, event)
                stack.append(_Frame(container, event.anchor))
            elif kind is _MAPPING_END or kind is _SEQUENCE_END:
                frame = stack.pop()
                if frame.merges:
                    self._apply_merges(frame.container, frame.merges)  # type: ignore[arg-type]
                if frame.anchor is not None:
                    anchors[frame.anchor] = (frame.container, frame.weight)
                self._add(frame.container, frame.weight, frame.container.location)
            elif kind is _ALIAS:
                if event.anchor not in anchors:
                    raise _error(
                        filename, f"unknown alias *{event.anchor}", _location(filename, event.start_mark)
                    )
                value, weight = anchors[event.anchor]
                self._count(weight, event)
                self._add(value, weight, _location(filename, event.start_mark))
            elif kind is _DOCUMENT_START:
                self.documents += 1
                if self.documents > 1:
                    raise _error(
                        filename,
                        "file contains more than one YAML document ('---'); a valohai.yaml is a single list",
                        _location(filename, event.start_mark),
                    )

    def _count(self, weight: int, event: yaml.Event) -> None:
        self.nodes += weight
        if self.nodes > MAX_NODES:
            raise _error(
                self.filename,
                f"document expands to more than {MAX_NODES} values (too many aliases?); refusing to load it",
                _location(self.filename, event.start_mark),
            )

    def _construct(self, event: yaml.ScalarEvent) -> Any:
        """The scalar's value (a repeated immutable one, such as keys, step names and images, is
        resolved once: `build` keeps them by tag, text and style)."""
        tag = event.tag
        if tag is None or tag == "!":
            tag = self.resolver.resolve(yaml.ScalarNode, event.value, event.implicit)  # type: ignore[no-untyped-call]
        node = yaml.ScalarNode(tag, event.value, None, None, event.style)
        if tag == _MERGE_TAG:
            return _MergeKey()
        construct = SafeConstructor.yaml_constructors.get(tag)
        if construct is None:
            raise _error(
                self.filename,
                f"unsupported YAML tag {tag!r}",
                _location(self.filename, event.start_mark),
            )
        try:
            return construct(self.constructor, node)
        except (ConstructorError, ValueError, TypeError) as exc:
            raise _error(
                self.filename,
                f"cannot read {shown(event.value)} as {tag}: {exc}",
                _location(self.filename, event.start_mark),
            ) from None

    def _check_collection_tag(self, event: yaml.CollectionStartEvent) -> None:
        tag = event.tag
        expected = _MAP_TAG if isinstance(event, yaml.MappingStartEvent) else _SEQ_TAG
        if tag not in (None, "!", expected):
            raise _error(
                self.filename, f"unsupported YAML tag {tag!r}", _location(self.filename, event.start_mark)
            )

    def _add(self, value: Any, weight: int, location: Location) -> None:
        if not self.stack:
            self.result = value
            return
        frame = self.stack[-1]
        frame.weight += weight
        container = frame.container
        if isinstance(container, YamlList):
            container.append(value)
            container.item_locations.append(location)
            return
        if frame.key is _NO_KEY:
            if isinstance(value, dict | list):
                raise _error(self.filename, "mapping keys must be plain scalars, not collections", location)
            frame.key = value
            frame.key_location = location
            return
        key, key_loc = frame.key, frame.key_location
        frame.key = _NO_KEY
        assert key_loc is not None
        if isinstance(key, _MergeKey):
            merges = value if isinstance(value, list) else [value]
            if not all(isinstance(m, YamlMap) for m in merges):
                raise _error(self.filename, "'<<' merge key needs a mapping or a list of mappings", location)
            frame.merges.extend(merges)
            return
        try:
            duplicate = key in container
        except TypeError:
            raise _error(self.filename, f"mapping key {shown(key)} is not a usable key", key_loc) from None
        if duplicate:
            first = container.key_locations[key]
            raise _error(
                self.filename,
                f"duplicate key {shown(key)} in one mapping (first defined at line {first.line}, column {first.column})",
                key_loc,
            )
        container[key] = value
        container.key_locations[key] = key_loc
        container.value_locations[key] = location

    @staticmethod
    def _apply_merges(mapping: YamlMap, merges: list[YamlMap]) -> None:
        explicit = dict(mapping)
        keys, values = dict(mapping.key_locations), dict(mapping.value_locations)
        mapping.clear()
        for source in merges:
            for key, value in source.items():
                if key not in explicit and key not in mapping:
                    mapping[key] = value
                    mapping.key_locations[key] = source.key_locations[key]
                    mapping.value_locations[key] = source.value_locations[key]
        for key, value in explicit.items():
            mapping[key] = value
            mapping.key_locations[key] = keys[key]
            mapping.value_locations[key] = values[key]


_IMMUTABLE_SCALARS = (str, int, float, bytes, type(None), datetime.date)


class _MergeKey:
    """Marker for the YAML '<<' merge key."""

    def __hash__(self) -> int:
        return 0
