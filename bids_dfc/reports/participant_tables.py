"""HTML tables of the participant report: the seed table, the dFC table and the intervals of
the dFC SD (``--dfc-bootstrap``) as the summary shows them."""

from __future__ import annotations

import math

import pandas as pd

from bids_dfc.connectivity.tables import BOOT_COLUMNS
from bids_dfc.reports.text import MISSING, format_number

__all__ = ["dfc_table", "has_interval", "interval_text", "seed_table", "table_html"]

#: the seed table's coordinate triples, each shown as one column (the table fits a narrow
#: window): the template-space definition and the weighted centre on the BOLD grid
_TRIPLES = {"centre, template (mm)": ["x", "y", "z"],
            "weighted centre, BOLD (mm)": ["centre_x", "centre_y", "centre_z"]}


def table_html(df: pd.DataFrame, max_rows: int = 12) -> str:
    """A table whose headers may wrap after an underscore (a zero-width space there); one
    still wider than the window scrolls inside its own box, never the page."""
    df = df.rename(columns=lambda c: str(c).replace("_", "_\u200b"))
    return '<div class="table">' + df.head(max_rows).to_html(
        index=False, float_format=lambda v: f"{v:.4g}", border=0, na_rep="n/a") + "</div>"


def seed_table(info: pd.DataFrame) -> str:
    """The seed table (the run's ``seed_info``) with its coordinate triples joined."""
    for label, cols in _TRIPLES.items():
        if set(cols) <= set(info.columns):
            triple = info[cols].apply(lambda r: ", ".join(f"{v:.4g}" for v in r), axis=1)
            info.insert(info.columns.get_loc(cols[0]), label, triple)
            info = info.drop(columns=cols)
    return table_html(info, 50)


def has_interval(dfc: pd.DataFrame) -> bool:
    """Whether a dFC table holds at least one bootstrap interval of the SD."""
    return "dcc_sd_ci_low" in dfc and bool(pd.to_numeric(dfc["dcc_sd_ci_low"]).notna().any())


def interval_text(row) -> str:
    """``"0.031 to 0.181"`` from a dFC table row (``n/a`` without an interval)."""
    low, high = (float(row.get(c, math.nan)) for c in BOOT_COLUMNS[:2])
    if math.isnan(low) or math.isnan(high):
        return MISSING
    return f"{format_number(low)} to {format_number(high)}"


def dfc_table(dfc: pd.DataFrame) -> str:
    """The run's dFC table; the bootstrap columns only when they hold an interval."""
    if not has_interval(dfc):
        dfc = dfc.drop(columns=[c for c in BOOT_COLUMNS if c in dfc])
    return table_html(dfc)
