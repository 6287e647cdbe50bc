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


def _code_blocks(lang: str) -> list[str]:
    """README's fenced code blocks of one language, in order."""
    import re

    text = README.read_text(encoding="utf-8")
    return re.findall(rf"^```{lang}\n(.*?)^```", text, flags=re.S | re.M)


def _tour() -> list[list[str]]:
    """The tour's command lines (the block under '## A tour'), comments dropped, split as a shell does."""
    import shlex

    text = README.read_text(encoding="utf-8")
    block = text.split("## A tour", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    return [shlex.split(line, comments=True) for line in block.splitlines() if line.strip()]


def test_the_tours_compare_line_has_two_results_made_before_it():
    """`bncli compare A B` in the tour compares folders that earlier tour lines write with --out,
    each with an analysis subcommand (a fresh clone has nothing else)."""
    from bncli.analyses import BY_COMMAND

    lines = _tour()
    compares = [i for i, words in enumerate(lines) if words[:2] == ["bncli", "compare"]]
    assert compares, "the tour has no compare line"
    for i in compares:
        folders = lines[i][2:4]
        assert len(folders) == 2 and folders[0] != folders[1], lines[i]
        for folder in folders:
            makers = [w for w in lines[:i] if w[:1] == ["bncli"] and len(w) > 1 and w[1] in BY_COMMAND
                      and "--out" in w and w[w.index("--out") + 1] == folder]
            assert len(makers) == 1, f"{folder}: made by {len(makers)} earlier tour lines"


def test_the_tour_runs_each_subcommand_on_a_valid_spec():
    """Every spec the tour names exists and passes `bncli validate --no-data` for its subcommand."""
    from typer.testing import CliRunner

    from bncli.analyses import BY_COMMAND
    from bncli.cli import app

    root = README.parent
    checked = 0
    for words in _tour():
        if words[:1] == ["bncli"] and len(words) > 2 and words[1] in BY_COMMAND:
            spec = root / words[2]
            result = CliRunner().invoke(app, ["validate", "--no-data", str(spec), "-c", words[1]])
            assert result.exit_code == 0, (words, result.output)
            checked += 1
    assert checked >= 8


def test_the_batch_example_passes_its_own_dry_run(tmp_path):
    """The batch file README shows (saved as my_checks.yaml at the repository's root) passes
    `bncli batch --dry-run`: its specs, matrix cells and expectations all fit."""
    import shutil

    import yaml
    from typer.testing import CliRunner

    from bncli.cli import app

    (example,) = [b for b in _code_blocks("yaml") if b.startswith("defaults:") and "comparisons:" in b]
    for comp in yaml.safe_load(example)["comparisons"]:  # copy the specs it names, at their paths
        target = tmp_path / comp["spec"]
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(README.parent / comp["spec"], target)
    batch = tmp_path / "my_checks.yaml"
    batch.write_text(example, encoding="utf-8")
    result = CliRunner().invoke(app, ["batch", str(batch), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "edge[activation=tanh]" in result.stdout
