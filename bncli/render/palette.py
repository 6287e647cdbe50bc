"""One palette for every output: terminal, report (HTML, print), figures and notebook.

Okabe & Ito's colour-blind-safe set. A verdict always carries a symbol as well as a colour, so
colour is never the only carrier (monochrome terminals, print, colour blindness). Change colours
here only; every renderer reads them from this module.
"""

from __future__ import annotations

#: Okabe–Ito, in the order figures use for series.
OKABE_ITO = ["#000000", "#E69F00", "#56B4E9", "#009E73", "#0072B2", "#D55E00", "#CC79A7", "#F0E442"]

#: verdict → (hex colour for report/figures, text colour on it, rich style for the terminal, symbol)
VERDICTS: dict[str, tuple[str, str, str, str]] = {
    "supported": ("#0072B2", "#FFFFFF", "bold #0072B2", "✓"),
    "refuted": ("#D55E00", "#FFFFFF", "bold #D55E00", "✗"),
    "inconclusive": ("#F0E442", "#000000", "#B8A800", "?"),
    "exploratory": ("#D9D9D9", "#000000", "dim", "~"),
    "no verdict": ("#FFFFFF", "#5B5B5B", "dim", "–"),
}

#: pass / fail marks (batch expectations, compare), the same hues as supported / refuted.
PASS = ("#0072B2", "bold #0072B2", "✓")
FAIL = ("#D55E00", "bold #D55E00", "✗")
KNOWN = ("#CC79A7", "#CC79A7", "≈")  # a known deviation (an expectation that SCIENCE.md lists as failing)


def verdict_hex(verdict: str) -> str:
    """The fill colour of a verdict in the report and figures."""
    return VERDICTS.get(verdict, VERDICTS["no verdict"])[0]


def verdict_ink(verdict: str) -> str:
    """The text colour on a verdict's fill."""
    return VERDICTS.get(verdict, VERDICTS["no verdict"])[1]


def verdict_style(verdict: str) -> str:
    """The rich style of a verdict in the terminal."""
    return VERDICTS.get(verdict, VERDICTS["no verdict"])[2]


def verdict_symbol(verdict: str) -> str:
    """The symbol that goes with a verdict wherever it is shown."""
    return VERDICTS.get(verdict, VERDICTS["no verdict"])[3]


def expectation_state(outcome: dict) -> str:
    """'met', 'known' (a known deviation: SCIENCE.md lists it; JUnit <skipped>) or 'unmet'."""
    return "known" if outcome.get("skipped") else "met" if outcome.get("passed") else "unmet"


def expectation_counts(outcomes: list) -> str:
    """'18 met, 11 known deviation(s), 2 unmet' for a batch's expectation outcomes."""
    states = [expectation_state(o) for o in outcomes]
    return (f"{states.count('met')} met, {states.count('known')} known deviation(s), "
            f"{states.count('unmet')} unmet")


#: expectation state → (hex, symbol) in the report
EXPECTATION_MARKS = {"met": (PASS[0], PASS[2]), "known": (KNOWN[0], KNOWN[2]), "unmet": (FAIL[0], FAIL[2])}
