"""README's tables of sources, families, norms and claims are generated from the registries
(`python -m bncli.readme_tables`): this keeps them current."""

from __future__ import annotations

from pathlib import Path

from bncli.readme_tables import TABLES, blocks, render

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_tables_are_generated_from_the_registries():
    text = README.read_text(encoding="utf-8")
    found = blocks(text)
    assert set(found) == set(TABLES), f"README has generated blocks {sorted(found)}, expected {sorted(TABLES)}"
    assert render(text) == text, "README's tables are stale: run `python -m bncli.readme_tables README.md`"


def test_a_registered_entry_shows_in_its_table():
    from bncli.norms import NORMS, NormInfo, register_norm

    before = NORMS.snapshot()
    try:
        register_norm(NormInfo("toy", "a toy", True, False, False, False, False, presets={"toynorm": {}}))
        assert "| `toy` | `toynorm` |" in TABLES["norms"]()
    finally:
        NORMS.restore(before)
