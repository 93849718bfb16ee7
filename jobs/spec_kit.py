"""Typed checks for YAML specs, with one error type whose message names the spec file and the key path.

Job specs (`thresher run`) and vendor specs (`thresher vendors`) both validate with
these checks, so a bad value reads the same in either: `spec.yaml: vendors[1].price.unit:
must be one of document, token, sample, got 'byte'`. A check is a function `(at, value)
-> cleaned value` that raises `SpecError` through `at.error(...)`; `fields` applies a
schema of checks to a mapping, refusing unknown keys and filling defaults.
"""
from __future__ import annotations

import copy
import functools
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from thresher.metrics.errors import InputError
from thresher.pipeline.storage import Location, place

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_YAML_DEPTH = 32
"""Deepest nesting a YAML spec may have (its top level is level 1); real specs stay under 8. PyYAML composes
recursively, and json.dump (job-spec.json) and repr walk the loaded spec recursively too: this keeps all of them
far from Python's recursion limit, and bounds the indentation an indented JSON dump repeats on every line."""
MAX_YAML_VALUES = 1_000_000
"""Most values a YAML spec may hold with every alias expanded (each scalar, list, mapping and key is one).
Aliases share one object when loaded, but whatever writes the spec out (job-spec.json) expands them all."""
MAX_YAML_TEXT = 16 * 1024**2
"""Most bytes (UTF-8) of scalar text a YAML spec may hold with every alias expanded: a string repeated through
aliases costs its length each time. A spec's literal text is shorter than its file, and specs are capped at
16 MiB or less, so only aliases can reach this: expanded, a spec holds no more text than one written out could."""


class SpecError(InputError):
    """A problem in a spec: the message starts with the spec file and the key path (exit code 2)."""


@dataclass(frozen=True)
class At:
    """Where a value sits: the spec file and the key path inside it, e.g. `pools.edges[0]`."""

    file: str
    key: str = ""

    def child(self, name: object) -> At:
        return At(self.file, f"{self.key}.{name}" if self.key else str(name))

    def item(self, index: int) -> At:
        return At(self.file, f"{self.key}[{index}]")

    @property
    def folder(self) -> Path | Location:
        """The spec file's folder (a prefix, for a spec in a store): relative paths in the spec resolve against it."""
        return place(self.file).parent

    def error(self, message: str) -> SpecError:
        return SpecError(f"{self}: {message}")

    def __str__(self) -> str:
        return f"{self.file}: {self.key}" if self.key else self.file


Check = Callable[[At, Any], Any]


@dataclass(frozen=True)
class Required:
    """Schema default of a key that must be given; `hint` says what it is for."""

    hint: str = ""


REQUIRED = Required()
Field = tuple[Check, Any]  # (check, default); a `Required` default makes the key mandatory


def shown(value: Any, limit: int = 80) -> str:
    """A value as it appears in a message: its repr, cut short."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def anything(at: At, value: Any) -> Any:
    """No check here: the caller validates the value with more context (e.g. a price and its vendor)."""
    return value


def text(at: At, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise at.error(f"must be a non-empty string, got {shown(value)}")
    return value


def boolean(at: At, value: Any) -> bool:
    if not isinstance(value, bool):
        raise at.error(f"must be true or false, got {shown(value)}")
    return value


def _real(at: At, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise at.error(f"must be a finite number, got {shown(value)}")
    return value


def _in_range(at: At, value: Any, lo: float | None, hi: float | None, open_lo: bool) -> None:
    if lo is not None and (value <= lo if open_lo else value < lo):
        raise at.error(f"must be {'>' if open_lo else '>='} {lo:g}, got {shown(value)}")
    if hi is not None and value > hi:
        raise at.error(f"must be <= {hi:g}, got {shown(value)}")


def number(lo: float | None = None, hi: float | None = None, *, open_lo: bool = False) -> Check:
    """A finite number in [lo, hi] ((lo, hi] with open_lo), as a float."""
    def check(at: At, value: Any) -> float:
        _in_range(at, _real(at, value), lo, hi, open_lo)
        return float(value)
    return check


def integer(lo: int | None = None, hi: int | None = None) -> Check:
    """A whole number in [lo, hi] (5 and 5.0 both give 5)."""
    def check(at: At, value: Any) -> int:
        if float(_real(at, value)) != int(value):
            raise at.error(f"must be a whole number, got {shown(value)}")
        _in_range(at, value, lo, hi, False)
        return int(value)
    return check


def one_of(*choices: Any) -> Check:
    def check(at: At, value: Any) -> Any:
        if not any(value == c and type(value) is type(c) for c in choices):  # True is not 1 here
            names = ", ".join("null" if c is None else str(c) for c in choices)
            raise at.error(f"must be one of {names}, got {shown(value)}")
        return value
    return check


def optional(check: Check) -> Check:
    """`check`, or None when the value is null."""
    def inner(at: At, value: Any) -> Any:
        return None if value is None else check(at, value)
    return inner


def list_of(item: Check, min_len: int = 1, what: str = "") -> Check:
    """A list whose items each pass `item`; `what` names the items in messages."""
    kind = ("a non-empty list" if min_len == 1 else "a list") + (f" of {what}" if what else "")

    def check(at: At, value: Any) -> list:
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)) or (min_len == 1 and not value):
            raise at.error(f"must be {kind}, got {shown(value)}")
        if len(value) < min_len:
            raise at.error(f"needs at least {min_len} items" + (f" ({what})" if what else "") + f", got {len(value)}")
        return [item(at.item(i), x) for i, x in enumerate(value)]
    return check


def mapping(at: At, value: Any) -> dict:
    if not isinstance(value, Mapping):
        raise at.error(f"must be a mapping (key: value), got {shown(value)}")
    return dict(value)


def name(at: At, value: Any) -> str:
    """A name that is safe as a file name: it becomes one (a vendor's quarantine file, a pool's folder)."""
    if not isinstance(value, str) or not NAME_RE.match(value):
        raise at.error("must be 1-64 letters, digits, '_', '-' or '.', starting with a letter or digit; "
                       f"got {shown(value)}")
    return value


def unique(at: At, names: list[str], what: str) -> None:
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise at.error(f"{what} names must be unique; repeated: {repeated}")


def existing_file(suffixes: tuple[str, ...] | None = None) -> Check:
    """An existing file, relative to the spec's folder (a URI stands for itself, and a relative path in a spec that
    is itself in a store names an object beside it); `suffixes` (lower case) limits its type."""
    def check(at: At, value: Any) -> Path | Location:
        if not isinstance(value, str) or not value.strip():
            raise at.error(f"must be a file path, got {shown(value)}")
        path = place(value)  # a URI stands for itself
        if isinstance(path, Path) and not path.is_absolute():
            path = at.folder / value
        if suffixes is not None and path.suffix.lower() not in suffixes:
            raise at.error(f"unsupported file type {path.suffix!r}; use one of {', '.join(suffixes)}")
        if not path.is_file():
            raise at.error(f"no such file: {path}")
        return path
    return check


def fields(at: At, value: Any, schema: Mapping[str, Field]) -> dict[str, Any]:
    """A mapping checked key by key against `schema`; null counts as empty, absent keys get their default."""
    given = {} if value is None else mapping(at, value)
    for key in given:
        if key not in schema:
            of = f" of {at.key}" if at.key else ""
            raise at.child(key).error(f"unknown key (known keys{of}: {', '.join(schema)})")
    out: dict[str, Any] = {}
    for key, (check, default) in schema.items():
        if key in given:
            out[key] = check(at.child(key), given[key])
        elif isinstance(default, Required):
            raise at.child(key).error("is required" + (f" ({default.hint})" if default.hint else ""))
        else:
            out[key] = copy.deepcopy(default)
    return out


def defaults(schema: Mapping[str, Field]) -> dict[str, Any]:
    """The mapping an absent section stands for: every key at its default (none may be required)."""
    assert not any(isinstance(d, Required) for _, d in schema.values()), "a section with required keys has no defaults"
    return {key: default for key, (_, default) in schema.items()}


def section(schema: Mapping[str, Field]) -> Check:
    """`fields` as a check, for a mapping nested in another."""
    return lambda at, value: fields(at, value, schema)


class _TooBig(Exception):
    """A bound of the YAML loader was hit; `load_yaml` turns it into a SpecError that names the file."""

    def __init__(self, problem: str, hint: str, line: int | None = None) -> None:
        super().__init__(problem)
        self.hint = hint  # completes "a <what> ..." in the message
        self.line = line  # 1-based, where the document shows the problem


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


_DATA_HINT = "holds settings, data belongs in separate files"
_DEPTH_HINT = "holds settings, not deeply nested data"


@functools.cache
def _bounded_loader() -> type:
    """A yaml.SafeLoader that counts what it composes, so a deep or huge document stops before it is built.

    Built on first use because PyYAML is imported lazily. The depth check runs before PyYAML's composer
    recurses a level further, so `[[[[...` is refused at MAX_YAML_DEPTH, far from Python's recursion limit.
    Alias events are not counted here: they add no nodes, `_check_expanded` counts what they stand for.
    """
    import yaml

    class BoundedLoader(yaml.SafeLoader):
        def __init__(self, stream: str) -> None:
            super().__init__(stream)
            self.depth = 0  # levels being composed above the next node
            self.values = 0  # nodes composed so far, aliases not expanded
            self.text = 0  # bytes of scalar text composed so far

        def compose_node(self, parent: Any, index: Any) -> Any:
            event = self.peek_event()
            if self.depth >= MAX_YAML_DEPTH:
                raise _TooBig(f"nested more than {MAX_YAML_DEPTH} levels deep", _DEPTH_HINT,
                              event.start_mark.line + 1)
            if not isinstance(event, yaml.AliasEvent):
                self.values += 1
                if isinstance(event, yaml.ScalarEvent):
                    self.text += _utf8_len(event.value)
                if self.values > MAX_YAML_VALUES:
                    raise _TooBig(f"holds more than {MAX_YAML_VALUES:,} values", _DATA_HINT)
                if self.text > MAX_YAML_TEXT:
                    raise _TooBig(f"holds more than {MAX_YAML_TEXT:,} bytes of text", _DATA_HINT)
            self.depth += 1
            try:
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

    return BoundedLoader


def _check_expanded(root: Any) -> None:
    """Refuse a composed document whose aliases expand it past the limits or make it hold itself.

    In the composed graph every alias is the anchored node itself, so a node's expanded size is summed from its
    children's once and remembered: the walk costs the graph's size, never the expansion's (9**9 values for the
    billion-laughs file). It is a loop, not a recursion, and it refuses at the first node over a limit.
    """
    import yaml

    def children(node: Any) -> list[Any]:
        if isinstance(node, yaml.MappingNode):
            return [part for pair in node.value for part in pair]
        return node.value if isinstance(node, yaml.SequenceNode) else []

    sizes: dict[int, tuple[int, int, int]] = {}  # id(node) -> (values, text bytes, levels) with aliases expanded
    on_path: set[int] = set()  # nodes whose children are being measured: the ancestors of the next node
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, kids_done = stack.pop()
        key = id(node)
        if kids_done:
            kids = [sizes[id(kid)] for kid in children(node)]
            values = 1 + sum(k[0] for k in kids)
            text = (_utf8_len(node.value) if isinstance(node, yaml.ScalarNode) else 0) + sum(k[1] for k in kids)
            levels = 1 + max((k[2] for k in kids), default=0)
            if values > MAX_YAML_VALUES:
                raise _TooBig(f"expands to more than {MAX_YAML_VALUES:,} values (YAML aliases nested too deeply)",
                              _DATA_HINT)
            if text > MAX_YAML_TEXT:
                raise _TooBig(f"expands to more than {MAX_YAML_TEXT:,} bytes of text "
                              "(YAML aliases repeat long strings)", _DATA_HINT)
            if levels > MAX_YAML_DEPTH:
                raise _TooBig(f"nested more than {MAX_YAML_DEPTH} levels deep once YAML aliases are expanded",
                              _DEPTH_HINT, node.start_mark.line + 1)
            sizes[key] = (values, text, levels)
            on_path.discard(key)
        elif key in on_path:  # an alias inside an anchored value that names that value
            raise _TooBig("a YAML alias refers back to the value that holds it (an endless structure)",
                          "holds plain nested settings", node.start_mark.line + 1)
        elif key not in sizes:
            on_path.add(key)
            stack.append((node, True))
            stack.extend((kid, False) for kid in children(node))


def _load_bounded(text: str) -> Any:
    """yaml.safe_load with the limits above: what `safe_load` does (compose, then construct), checked between."""
    loader = _bounded_loader()(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expanded(node)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def load_yaml(path: str | Path, what: str, max_bytes: int) -> Any:
    """A YAML file loaded safely (plain data only, no tags that build objects), with errors that give the line.

    Besides the byte cap, the document's nesting and its size with aliases expanded are bounded
    (MAX_YAML_DEPTH, MAX_YAML_VALUES, MAX_YAML_TEXT): a small file must not become a huge spec.
    """
    import yaml

    from thresher.pipeline.safety import InputTooLarge, read_capped

    path = place(path)
    if not path.is_file():
        raise SpecError(f"{path}: no such {what}")
    try:
        data = _load_bounded(read_capped(path, max_bytes, what=what).decode("utf-8"))
    except InputTooLarge:
        raise SpecError(f"{path}: larger than {max_bytes} bytes; a {what} holds settings, "
                        "data belongs in separate files") from None
    except UnicodeDecodeError:
        raise SpecError(f"{path}: not UTF-8 text") from None
    except _TooBig as exc:
        where = f"{path}: line {exc.line}" if exc.line is not None else str(path)
        raise SpecError(f"{where}: {exc}; a {what} {exc.hint}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}: line {mark.line + 1}" if mark is not None else str(path)
        raise SpecError(f"{where}: not valid YAML: {getattr(exc, 'problem', None) or exc}") from None
    if data is None:
        raise SpecError(f"{path}: the {what} is empty")
    return data
