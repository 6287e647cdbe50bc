"""Markdown escaping shared by the report's text (report_text) and its regime section (regimes):
a leaf module, so neither imports the other."""

from __future__ import annotations

import re
from typing import Any


class _Markup(str):
    """Markdown bncli wrote itself (a verdict with its footnote reference): kept as it is in a table."""


def _md(text: Any) -> str:
    """Text from the results in a table cell or after a list marker: escaped once, like a line
    (no code span, link, raw HTML or cell it could open or close); bncli's own markup as it is."""
    if isinstance(text, _Markup):
        return str(text)
    s = " ".join(str(text).split())
    return re.sub(r"([\\`\[\]|])", r"\\\1", s).replace("<", "&lt;")
