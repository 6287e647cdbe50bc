"""An example bncli plugin: an RMSNorm arm and a gradient-noise-scale analysis with claim C10,
registered through the same public functions bncli's own modules use."""

from __future__ import annotations

from bncli.analyses import register_analysis
from bncli.norms import NormInfo, register_norm
from bncli.probes.registry import ProbeKind, register_probe
from bncli_example_plugin import analysis
from bncli_example_plugin.layers import build_rms, rms_note

ARM = "rmsnorm"  # the arm preset this plugin adds
COMMAND = "measure-gns"  # the subcommand this plugin adds
NORM = "rms"

register_norm(NormInfo(
    NORM, "RMSNorm (Zhang & Sennrich 2019)", normalizes=True, running_stats=False, affine=True,
    per_batch=False, jacobian_closed_form=False, builder=build_rms, abbrev="RMS",
    over="the layer's units (root mean square, no mean subtracted)", has_beta=False,
    eps_enters="each example's mean square across units, x/√(mean x² + ε)", ics_note=rms_note,
    presets={ARM: {}}))
register_probe(ProbeKind("gns", "gns", "bncli_example_plugin.probe:make_probe"))
register_analysis(analysis.ANALYSIS, analysis.CLAIMS, section_model=analysis.GnsSpec,
                  section_help=f"{COMMAND} (C10)")
