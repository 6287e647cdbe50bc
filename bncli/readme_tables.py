"""README's tables of data sources, model families, normalizations and claims, generated from the
registries (as `bncli spec --defaults` is from the spec's models): `python -m bncli.readme_tables`
rewrites the blocks between `<!-- bncli:table NAME -->` and `<!-- /bncli:table -->` in README.md;
tests/test_readme.py checks they are current. A plugin's entries show when it is loaded."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path


def _code(names: object) -> str:
    return ", ".join(f"`{n}`" for n in names) or "–"  # type: ignore[union-attr]


def sources_table() -> str:
    from bncli.data.registry import SOURCES

    rows = ["| `data.source` | what | fields it reads | `root` | `augment` |", "|---|---|---|---|---|"]
    for name, s in SOURCES.items():
        rows.append(f"| `{name}` | {s.help} | {_code(s.fields)} | "
                    f"{'yes' if s.reads_root else '–'} | {'yes' if s.augment else '–'} |")
    return "\n".join(rows)


def families_table() -> str:
    from bncli.models.registry import FAMILIES

    rows = ["| `model.kind` | what | fields it reads | fused sweeps |", "|---|---|---|---|"]
    for name, f in FAMILIES.items():
        fused = "–" if f.fuses is None else f"{f.fuses} ({', '.join(f.fuses_on)})"
        rows.append(f"| `{name}` | {f.help} | {_code(f.fields)} | {fused} |")
    return "\n".join(rows)


def norms_table() -> str:
    from bncli.norms import NORMS

    rows = ["| `norm` | presets | what it normalizes (MLP; CNN) | γ, β | running stats | per batch | fused |",
            "|---|---|---|---|---|---|---|"]
    for name, n in NORMS.items():
        affine = ("–" if not n.normalizes else "none (`affine` ignored)" if not n.affine
                  else "`affine`" if n.beta else "γ only (`affine`)")
        rows.append(f"| `{name}` | {_code(n.presets)} | {n.doc or n.over or n.label} | {affine} | "
                    f"{'yes' if n.running_stats else 'no' if n.normalizes else '–'} | "
                    f"{'yes' if n.per_batch else 'no' if n.normalizes else '–'} | {', '.join(n.fuses) or '–'} |")
    return "\n".join(rows)


def claims_table() -> str:
    from bncli.analyses import ANALYSES
    from bncli.claims import CLAIMS, claim_ids

    rows = ["| claim | subcommand | statement |", "|---|---|---|"]
    for cid in claim_ids():
        commands = [a.command for a in ANALYSES.values() if cid in a.claims]
        rows.append(f"| {cid} | {_code(commands)} | {CLAIMS.get(cid).statement} |")
    return "\n".join(rows)


TABLES: dict[str, Callable[[], str]] = {"sources": sources_table, "families": families_table,
                                        "norms": norms_table, "claims": claims_table}
_BLOCK = re.compile(r"(<!-- bncli:table (\w+) -->\n)(.*?)(<!-- /bncli:table -->)", re.S)


def render(text: str) -> str:
    """`text` with every generated block replaced by the registries' current table."""
    def fill(m: re.Match[str]) -> str:
        return f"{m.group(1)}{TABLES[m.group(2)]()}\n{m.group(4)}"

    return _BLOCK.sub(fill, text)


def blocks(text: str) -> dict[str, str]:
    return {m.group(2): m.group(3) for m in _BLOCK.finditer(text)}


def main(path: str = "README.md") -> int:
    p = Path(path)
    old = p.read_text(encoding="utf-8")
    new = render(old)
    if new != old:
        p.write_text(new, encoding="utf-8")
    print(f"{path}: {'updated' if new != old else 'current'} ({', '.join(blocks(new))})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(*sys.argv[1:]))
