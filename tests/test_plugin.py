"""The example plugin (examples/plugin) works from outside the package: with consent it adds an
RMSNorm arm (its module's ARM) that every analysis runs, and a subcommand (its COMMAND) whose
claim C10 a batch expectation can name; without consent nothing of it is imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_DIR = ROOT / "examples" / "plugin"
MODULE = "bncli_example_plugin"


def _env(consent: bool) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(PLUGIN_DIR), env.get("PYTHONPATH", "")])
    env["BNCLI_PLUGINS"] = MODULE
    env.pop("BNCLI_ALLOW_CODE", None)
    if consent:
        env["BNCLI_ALLOW_CODE"] = "1"
    return env


def _bncli(args: list[str], consent: bool = True, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bncli", *args], capture_output=True, text=True,
                          env=_env(consent), cwd=cwd, timeout=600)


def _plugin_attrs() -> tuple[str, str]:
    code = (f"import sys; sys.path.insert(0, {str(PLUGIN_DIR)!r}); import {MODULE} as m; "
            "print(m.ARM, m.COMMAND)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=_env(True))
    arm, command = out.stdout.split()
    return arm, command


def test_a_plugin_needs_consent(tmp_path):
    res = _bncli(["validate", str(ROOT / "sample_configs" / "ci_smoke.yaml")], consent=False)
    assert res.returncode == 2, res.stderr
    assert MODULE in res.stderr and "--allow-code" in res.stderr and "Traceback" not in res.stderr
    _arm, command = _plugin_attrs()
    res = _bncli([command, "x.yaml"], consent=False)  # its subcommand: the same line, not "no such command"
    assert res.returncode == 2 and "--allow-code" in res.stderr
    # the top-level flag is consent too
    res = subprocess.run([sys.executable, "-m", "bncli", "--allow-code", "--help"], capture_output=True,
                         text=True, env=_env(False), timeout=120)
    assert res.returncode == 0 and command in res.stdout


def test_every_analysis_runs_the_plugin_arm_and_a_batch_expects_c10(tmp_path):
    arm, command = _plugin_attrs()
    commands = json.loads(subprocess.run(
        [sys.executable, "-c", "import json, bncli.cli; from bncli.analyses import ANALYSES; "
         "print(json.dumps([a.command for a in ANALYSES.values()]))"],
        capture_output=True, text=True, check=True, env=_env(True)).stdout)
    assert command in commands and {"train", "measure-ics", "lipschitz", "scale-check", "saturation"} <= set(commands)
    (tmp_path / "spec.yaml").write_text(textwrap.dedent(f"""
        name: plugin
        device: cpu
        threads: 1
        data: {{source: synthetic, n_samples: 160, n_features: 6}}
        model: {{kind: mlp, hidden: [8, 8], activation: relu}}
        arms: [plain, batchnorm, {arm}]
        train: {{lr: 0.1, batch_size: 16, steps: 6, eval_every: 3}}
        analysis:
          ics: {{every: 3}}
          lipschitz: {{every: 3, eta_points: 3}}
          scale: {{every: 3}}
          saturation: {{every: 3}}
          gns: {{every: 3, probe_size: 32, small: 8}}
    """))
    (tmp_path / "batch.yaml").write_text(textwrap.dedent(f"""
        comparisons:
          - name: plugin_arm
            spec: spec.yaml
            command: {json.dumps(commands)}
            expect:
              - {{claim: C10, command: {command}, verdict_in: [supported, refuted, inconclusive, exploratory]}}
              - {{not_diverged: {arm}}}
    """))
    res = _bncli(["batch", "batch.yaml", "--json", "--out", "out"], cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    doc = json.loads(res.stdout)
    text = json.dumps(doc)
    assert "C10" in text
    for cmd in commands:  # every analysis ran the plugin's arm
        summary = next((tmp_path / "out").rglob(f"*{cmd}*/summary.json"), None) or next(
            p for p in (tmp_path / "out").rglob("summary.json") if json.loads(p.read_text())["command"] == cmd)
        runs = json.loads(summary.read_text())["runs"]
        assert {r["arm"] for r in runs} == {"plain", "batchnorm", arm}, cmd
    assert list((tmp_path / "out").rglob("noise_scale.png")), "C10's plot from its registry entry"


def test_the_plugin_module_registers_through_public_functions_only():
    src = (PLUGIN_DIR / MODULE / "__init__.py").read_text()
    for fn in ("register_norm", "register_probe", "register_analysis"):
        assert fn in src
    assert "bncli.norms import NORMS" not in src  # no reaching into the registry's dicts
