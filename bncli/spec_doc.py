"""The spec, documented from its own pydantic models: every key with its default and a one-line
comment (`bncli spec --defaults`), and the JSON Schema editors use (`bncli spec --schema`).

Both are generated from the models (field descriptions, defaults, Literal choices), so they never
drift from what `bncli validate` accepts.
"""

from __future__ import annotations

import json
import re
import typing
from typing import Any, Literal

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from bncli.spec import _inner_model  # one copy: the error formatter walks models the same way

COMMENT_COLUMN = 34  # comments start here when the key and value are shorter
WIDTH = 100


def _choices(tp: Any) -> list[Any]:
    """The values a Literal (or a union holding Literals) allows."""
    if typing.get_origin(tp) is Literal:
        return list(typing.get_args(tp))
    out: list[Any] = []
    for arg in typing.get_args(tp):
        out += _choices(arg)
    return out


def _scalar(value: Any) -> str:
    """One YAML value on one line (flow style for lists)."""
    import yaml

    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    if isinstance(value, tuple):
        value = list(value)
    if hasattr(value, "__fspath__"):
        value = str(value)
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6).strip()
    return text.removesuffix("\n...").removesuffix("...").strip()


def source_comments(model: type[BaseModel]) -> dict[str, str]:
    """Each field's comment in the model's source, for fields without a description: the `#`
    lines right above it and its trailing `# ...`, joined into one line."""
    import inspect
    import io
    import tokenize

    try:
        source = inspect.getsource(model)
    except (OSError, TypeError):
        return {}
    out: dict[str, str] = {}
    above: list[str] = []
    line_of: dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            text = tok.string.lstrip("#").strip()
            if tok.line.strip().startswith("#"):
                above.append(text)
            elif tok.start[0] in line_of:  # trailing: belongs to the field on its line
                name = line_of[tok.start[0]]
                out[name] = "; ".join(x for x in (out.get(name, ""), text) if x)
        elif tok.type == tokenize.NAME and tok.start[1] == 4 and tok.line[4:].split(":")[0].strip() == tok.string \
                and tok.string in model.model_fields and tok.string not in out:
            line_of[tok.start[0]] = tok.string
            if above:
                out[tok.string] = " ".join(above)
            above = []
        elif tok.type == tokenize.NAME and tok.start[1] == 4:
            above = []
    return out


def _comment(field: Any, fallback: str = "") -> str:
    parts = []
    if field.description or fallback:
        parts.append(field.description or fallback)
    choices = [c for c in _choices(field.annotation) if c is not None]
    if choices and not (field.description and all(str(c) in field.description for c in choices)):
        parts.append("one of: " + ", ".join(str(c) for c in choices))
    return "; ".join(parts)


def _line(indent: int, key: str, value: str | None, comment: str) -> str:
    """`key: value  # comment`, the comment wrapped at WIDTH columns onto `#` lines below it."""
    import textwrap

    head = " " * indent + (f"{key}: {value}" if value is not None else f"{key}:")
    if not comment:
        return head
    start = max(COMMENT_COLUMN, len(head) + 2)
    parts = textwrap.wrap(comment, max(30, WIDTH - start - 2))
    pad = " " * (COMMENT_COLUMN - 1)
    return "\n".join([f"{head.ljust(start - 1)} # {parts[0]}", *(f"{pad} # {p}" for p in parts[1:])])


def _default(field: Any) -> Any:
    if field.default is not PydanticUndefined:
        return field.default
    return field.default_factory() if field.default_factory is not None else None


def _model_lines(model: type[BaseModel], indent: int, skip: set[str] = frozenset()) -> list[str]:
    lines: list[str] = []
    comments = source_comments(model)
    for name, field in model.model_fields.items():
        if name in skip:
            continue
        inner = _inner_model(field.annotation)
        default = _default(field)
        comment = _comment(field, comments.get(name, "") or (inner.__doc__ or "" if inner else ""))
        if inner is not None and isinstance(default, BaseModel):
            lines.append(_line(indent, name, None, comment))
            lines += _model_lines(inner, indent + 2)
        elif inner is not None and default is None:  # an opt-in section: off, its defaults commented
            lines.append(_line(indent, name, _scalar(default), comment))
            lines += ["#" + line[1:] if line.startswith(" ") else "# " + line
                      for line in _model_lines(inner, indent + 2)]
        else:
            lines.append(_line(indent, name, _scalar(default), comment))
    return lines


def defaults_yaml() -> str:
    """The whole spec with every key at its default, each with a one-line comment; it loads back
    as the default spec. Arm mappings' keys follow `arms:` as a commented example."""
    from bncli.spec import ArmSpec, Spec

    lines = ["# bncli spec: every key at its default (`bncli spec --defaults`). Keep only what you",
             "# change; unknown keys are errors. JSON Schema for editors: `bncli spec --schema`."]
    for name, field in Spec.model_fields.items():
        default = _default(field)
        if name == "arms":
            lines.append(_line(0, name, "[" + ", ".join(a.name for a in default) + "]", _comment(field)))
            lines.append(_line(0, "# - name", "my_arm", "an arm as a mapping (name is required)"))
            lines += ["#" + ln[1:] for part in _model_lines(ArmSpec, 4, skip={"name"})
                      for ln in part.split("\n")]
            continue
        inner = _inner_model(field.annotation)
        if inner is not None and isinstance(default, BaseModel):
            lines.append(_line(0, name, None, _comment(field, inner.__doc__ or "")))
            lines += _model_lines(inner, 2)
        else:
            lines.append(_line(0, name, _scalar(default), _comment(field)))
    return "\n".join(lines) + "\n"


def json_schema() -> dict[str, Any]:
    """Spec.model_json_schema(), widened where the loader accepts more than the models' types
    say: an arm preset name (or a comma-separated string of them) for `arms`, one number for
    `train.lr`, `inf` for an arm's `p`."""
    from bncli.spec import ARM_PRESETS, Spec

    schema = _standard_bounds(Spec.model_json_schema())
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "bncli spec"
    props = schema["properties"]
    arms = props["arms"]
    item = arms["items"]
    arms["items"] = {"anyOf": [{"enum": list(ARM_PRESETS), "description": "an arm preset"}, item]}
    # the string form: preset names separated by commas (the loader splits on commas, skips empty
    # parts); a repeated name in it is the loader's to refuse (a regular expression can't say it)
    name = "(?:" + "|".join(re.escape(n) for n in sorted(ARM_PRESETS, key=len, reverse=True)) + ")"
    props["arms"] = {"anyOf": [{k: v for k, v in arms.items() if k != "description"},
                               {"type": "string", "pattern": rf"^[\s,]*{name}(?:\s*,[\s,]*{name})*[\s,]*$",
                                "description": "comma-separated presets"}],
                     "description": arms.get("description", ""), "default": arms.get("default")}
    defs = schema["$defs"]
    lr = defs["TrainSpec"]["properties"]["lr"]
    defs["TrainSpec"]["properties"]["lr"] = {
        "anyOf": [lr["items"], {k: v for k, v in lr.items()
                                                              if k not in ("description", "default")}],
        "description": lr.get("description", ""), "default": lr.get("default")}
    return schema


_BOUNDS = {"gt": "exclusiveMinimum", "ge": "minimum", "lt": "exclusiveMaximum", "le": "maximum"}


def _standard_bounds(node: Any) -> Any:
    """Pydantic writes the bounds of a validated number type (the spec's Int and Float refuse
    booleans in a before-validator) as raw gt/le keys: JSON Schema's names instead."""
    if isinstance(node, dict):
        is_number = node.get("type") in ("integer", "number")
        return {(_BOUNDS[k] if is_number and k in _BOUNDS else k): _standard_bounds(v)
                for k, v in node.items()}
    if isinstance(node, list):
        return [_standard_bounds(v) for v in node]
    return node


def json_schema_text() -> str:
    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"
