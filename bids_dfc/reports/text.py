"""How the reports write numbers: the one home of P-value and number formatting.

Every P value a report shows (its sentences, tables and figure annotations) goes through
:func:`format_p`, APA style: three decimals without the leading zero (``P = .034``),
``P < .001`` below .001 and ``P > .999`` above .999. Other numbers go through
:func:`format_number` (significant digits, never scientific notation). The TSV outputs are
not formatted here: they keep their raw numbers.
"""

from __future__ import annotations

import math
import numbers

__all__ = ["format_number", "format_p"]

#: what a missing number reads as (the TSVs' missing value too)
MISSING = "n/a"


def format_p(p, *, label: bool = True) -> str:
    """A P value in APA style.

    Parameters
    ----------
    p : float
        A probability in [0, 1]; NaN (a test that did not run) gives ``"n/a"``.
    label : bool
        ``True``: ``"P = .034"`` (for sentences and figures); ``False``: ``".034"`` (for a
        table cell under a ``p`` header).

    Returns
    -------
    str
        ``P < .001`` below .001, ``P > .999`` above .999, otherwise three decimals, no
        leading zero, rounded to nearest -- except that a P below .05 that would round to
        .050 is shown as .049, so the text never contradicts a significance mark.

    Raises
    ------
    ValueError
        ``p`` is infinite or outside [0, 1].

    Examples
    --------
    >>> format_p(0.0349), format_p(0.001), format_p(0.0005), format_p(0.2, label=False)
    ('P = .035', 'P = .001', 'P < .001', '.200')
    """
    p = float(p)
    if math.isnan(p):
        return MISSING
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"a P value must be in [0, 1], got {p!r}")
    if p < 0.001:
        relation, value = "<", ".001"
    elif p > 0.999:
        relation, value = ">", ".999"
    else:
        thousandths = min(round(p * 1000), 49) if p < 0.05 else round(p * 1000)
        relation, value = "=", f".{thousandths:03d}"
    if label:
        return f"P {relation} {value}"
    return value if relation == "=" else f"{relation} {value}"


def format_number(x, digits: int = 3) -> str:
    """``x`` with ``digits`` significant digits, positional (``0.000295``, ``130``, never
    ``2.95e-04``); ``"n/a"`` for NaN or None; integers as they are.

    Examples
    --------
    >>> format_number(2.95e-4), format_number(128.4, 2), format_number(-0.05321), format_number(12)
    ('0.000295', '130', '-0.0532', '12')
    """
    if x is None:
        return MISSING
    if isinstance(x, numbers.Integral) and not isinstance(x, bool):
        return str(x)
    x = float(x)
    if math.isnan(x):
        return MISSING
    if math.isinf(x):
        return "-inf" if x < 0 else "inf"
    if x == 0:
        return "0"
    exponent = math.floor(math.log10(abs(x)))
    decimals = digits - 1 - exponent
    rounded = round(x, decimals)
    if rounded != 0 and math.floor(math.log10(abs(rounded))) > exponent:  # 9.996 -> 10.0
        decimals -= 1
        rounded = round(x, decimals)
    if decimals <= 0:
        return str(int(rounded))
    return f"{rounded:.{decimals}f}"
