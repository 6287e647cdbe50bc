"""Plugins: modules named in BNCLI_PLUGINS (comma-separated) and packages exposing the entry-point
group `bncli.plugins` are imported at start-up (the CLI, bncli.run, each worker process) and
register sources, families, norms, probes and analyses through the same public functions
bncli's own modules use (register_source, register_family, register_norm, register_probe,
register_analysis). Importing a plugin runs its code, so it happens only with the user's consent
(--allow-code or BNCLI_ALLOW_CODE=1, as a spec's model factory)."""

from __future__ import annotations

import importlib
import os
import re
from importlib import metadata

from bncli.errors import UsageError
from bncli.models.module import ALLOW_ENV, code_allowed  # the one consent, as a spec's model.factory

PLUGINS_ENV = "BNCLI_PLUGINS"
GROUP = "bncli.plugins"
_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_loaded: dict[str, object] = {}


def _entry_points() -> list[metadata.EntryPoint]:
    try:
        return list(metadata.entry_points(group=GROUP))
    except Exception:  # a broken distribution's metadata must not stop bncli  # noqa: BLE001
        return []


def plugin_names() -> list[str]:
    """What would be loaded: BNCLI_PLUGINS's modules, then the entry points' values, in order."""
    names = [n.strip() for n in os.environ.get(PLUGINS_ENV, "").split(",") if n.strip()]
    for ep in _entry_points():
        if ep.value not in names:
            names.append(ep.value)
    return names


def load_plugins(allow: bool | None = None) -> list[str]:
    """Import every plugin not imported yet (each once per process); return the names loaded.
    Without consent (`allow`, else BNCLI_ALLOW_CODE) a UsageError names them and nothing runs."""
    names = [n for n in plugin_names() if n not in _loaded]
    if not names:
        return []
    if not (code_allowed() if allow is None else allow):
        raise UsageError(f"plugins {', '.join(names)} (BNCLI_PLUGINS or the {GROUP} entry points) would be "
                         f"imported and run; if you trust them, pass --allow-code (or set {ALLOW_ENV}=1)")
    for name in names:
        module, _, attr = name.partition(":")
        if not _DOTTED.fullmatch(module) or (attr and not all(p.isidentifier() for p in attr.split("."))):
            raise UsageError(f"{PLUGINS_ENV}: {name!r} is not a module name (package.module)")
        try:
            obj: object = importlib.import_module(module)
        except ImportError as exc:
            raise UsageError(f"plugin {name!r} could not be imported: {exc}") from None
        for part in attr.split(".") if attr else ():
            obj = getattr(obj, part)
        if callable(obj) and attr:  # an entry point naming a function: call it to register
            obj()
        _loaded[name] = obj
    return names


def loaded() -> list[str]:
    return list(_loaded)
