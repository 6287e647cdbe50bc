"""The one safe YAML loader for specs and batch files: YAML 1.2 floats, no duplicate keys, bounded.

PyYAML's SafeLoader follows YAML 1.1, where `1e-3`, `3E+2` and `1e5` are strings (1.1 wants a dot
and a signed exponent); users write them as numbers, so this loader reads them as floats. It
also refuses what SafeLoader lets through silently or crashes on: a key given twice in one
mapping, files larger than any spec, and nesting deep enough to exhaust Python's stack.
Python-object tags (`!!python/...`) stay unsupported, and aliases stay shared objects (a
"billion laughs" file builds a small graph, not 10^9 strings).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node

from bncli.errors import SpecError

# a spec is a few KB; PyYAML's pure-Python parser needs ~6 s per MB, so a MB is already absurd
MAX_BYTES = 1 << 20
# specs nest 4-5 levels; deep nesting would otherwise end in a RecursionError
MAX_DEPTH = 64

_FLOAT_TAG = "tag:yaml.org,2002:float"
_MERGE_TAG = "tag:yaml.org,2002:merge"
# YAML 1.1 floats plus what YAML 1.2 (and every user) calls a float: 1e5, 1e-3, 3E+2, -.5
_FLOAT = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |[-+]?\.[0-9][0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)


class _DuplicateKeyError(ConstructorError):
    """A key given twice in one mapping (SafeLoader keeps the last one silently)."""


class _TooDeepError(ComposerError):
    """Nesting beyond MAX_DEPTH."""


class _BadValueError(ConstructorError):
    """A scalar its tag cannot read (`2024-13-45`, `!!int abc`): Python's error, with a line."""


class SpecLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 floats, duplicate-key errors and a nesting limit."""

    yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag != _FLOAT_TAG]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _TooDeepError(
                    None, None, f"nested deeper than {MAX_DEPTH} levels", self.peek_event().start_mark
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except (yaml.YAMLError, RecursionError):
            raise
        except Exception as exc:  # noqa: BLE001
            # SafeConstructor lets Python's own errors out: `2024-13-45`, `!!int abc`, `!!float`
            tag = str(node.tag).replace("tag:yaml.org,2002:", "!!")
            value = node.value if isinstance(node.value, str) else "..."
            raise _BadValueError(
                None, None, f"invalid {tag} value {_short(value)} ({_short(str(exc), 200)})", node.start_mark
            ) from None

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, MappingNode):
            first_line: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == _MERGE_TAG:
                    continue  # `<<: *base` then overriding a key is the point of merge keys
                key = self.construct_object(key_node, deep=True)
                try:
                    if key in first_line:
                        raise _DuplicateKeyError(
                            None,
                            None,
                            f"duplicate key {key!r} (first given on line {first_line[key] + 1})",
                            key_node.start_mark,
                        )
                    first_line[key] = key_node.start_mark.line
                except TypeError:
                    pass  # an unhashable key: SafeConstructor reports it below
        return super().construct_mapping(node, deep=deep)


SpecLoader.add_implicit_resolver(_FLOAT_TAG, _FLOAT, list("-+0123456789."))


def _short(value: Any, n: int = 60) -> str:
    """A value as shown in an error: a 100,000-digit number is not a one-line message."""
    text = value if isinstance(value, str) and n == 200 else repr(value)
    return text if len(text) <= n else f"{text[:n]}... ({len(text):,} characters)"


def _describe(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    problem = getattr(exc, "problem", None) or (str(exc).splitlines() or ["unreadable YAML"])[0]
    if isinstance(exc, (_DuplicateKeyError, _TooDeepError, _BadValueError)):
        return f"{where}{problem}"
    if isinstance(exc, ConstructorError) and "could not determine a constructor" in problem:
        tag = problem.rsplit(" ", 1)[-1].strip("'").replace("tag:yaml.org,2002:", "!!")
        return f"{where}unsupported YAML tag {tag} (a spec is plain YAML: mappings, lists, scalars)"
    return f"{where}YAML syntax error: {problem}"


def load_yaml_text(text: str, source: str) -> Any:
    """Parse YAML text with the spec loader; errors are one-line SpecErrors starting with `source`."""
    if len(text) > MAX_BYTES:
        raise SpecError(
            f"{source}: {len(text) / 1e6:.1f} MB is too large for a spec (at most {MAX_BYTES >> 20} MB)"
        )
    try:
        return yaml.load(text, Loader=SpecLoader)  # noqa: S506 (SpecLoader is a SafeLoader)
    except yaml.YAMLError as exc:
        raise SpecError(f"{source}: {_describe(exc)}") from None
    except RecursionError:  # belt and braces: MAX_DEPTH keeps the composer far from the limit
        raise SpecError(f"{source}: nested too deeply") from None


def load_yaml_file(path: str | Path) -> Any:
    """Read and parse a YAML file; a missing, unreadable, binary or oversized file is a SpecError."""
    p = Path(path)
    try:
        if not p.exists():
            raise SpecError(f"{p}: no such file")
        if p.is_dir():
            raise SpecError(f"{p}: is a directory, not a YAML file")
    except (OSError, ValueError) as exc:  # a name too long, a NUL byte
        raise SpecError(f"{str(p)[:200]}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        with p.open("rb") as f:  # bounded read: also safe on /dev/zero or a pipe
            data = f.read(MAX_BYTES + 1)
    except OSError as exc:
        raise SpecError(f"{p}: cannot read: {exc.strerror or exc}") from None
    if len(data) > MAX_BYTES:
        raise SpecError(
            f"{p}: the file is over {MAX_BYTES >> 20} MB, too large for a spec (is it the right file?)"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise SpecError(f"{p}: not a UTF-8 text file (is it the right file?)") from None
    return load_yaml_text(text, str(p))
