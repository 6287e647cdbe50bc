"""JUnit XML: one testcase per expectation (what CI systems show natively); a known deviation
that is not met is <skipped> with its reason."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from bncli.batch.run import BatchRun


def junit_xml(run: BatchRun) -> str:
    outcomes = run.outcomes
    failures = sum(not o.passed and not o.skipped for o in outcomes)
    skipped = sum(o.skipped for o in outcomes)
    errors = sum(bool(e.failures) for e in run.entries)
    suites = ET.Element("testsuites", name="bncli batch", tests=str(len(outcomes)),
                        failures=str(failures), errors=str(errors), skipped=str(skipped),
                        time=f"{run.wall_s:.3f}")
    suite = ET.SubElement(suites, "testsuite", name=run.batch_file, tests=str(len(outcomes)),
                          failures=str(failures), errors=str(errors), skipped=str(skipped),
                          time=f"{run.wall_s:.3f}")
    # a testcase's time: the training time of the comparison it checks (its runs' wall time)
    times = {(e.cell.name, e.command): sum(r.wall_s for r in e.result.runs if r.wall_s == r.wall_s)
             if e.result is not None else 0.0 for e in run.entries}
    for o in outcomes:
        case = ET.SubElement(suite, "testcase", classname=f"{o.cell}.{o.command}", name=o.expectation.describe(),
                             time=f"{times.get((o.cell, o.command), 0.0):.3f}")
        if o.skipped:  # a known deviation: the prediction is kept, not passed
            reason = o.expectation.known_deviation or ""
            ET.SubElement(case, "skipped", message=f"known deviation: {reason}"[:500]).text = o.detail
        elif not o.passed:
            fail = ET.SubElement(case, "failure", message=o.detail[:500], type="ExpectationNotMet")
            fail.text = o.detail
        else:
            ET.SubElement(case, "system-out").text = o.detail
    for e in run.entries:
        if e.failures:
            case = ET.SubElement(suite, "testcase", classname=f"{e.cell.name}.{e.command}", name="jobs ran",
                                 time=f"{times.get((e.cell.name, e.command), 0.0):.3f}")
            err = ET.SubElement(case, "error", message=f"{len(e.failures)} job(s) failed", type="JobFailed")
            err.text = "\n".join(f"{lbl}: {why}" for lbl, why in e.failures)
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
