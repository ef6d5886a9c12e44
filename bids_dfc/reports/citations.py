"""The one bibliography (``bids_dfc/data/references.json``) and the in-text citations of
a text (nipype-free: the group report, which must not reach nipype, cites from it too)."""

from __future__ import annotations

import json
import re
from functools import cache
from importlib import resources

__all__ = ["IN_TEXT", "bibliography", "cited_keys"]

#: an in-text citation: "Name 2002", "Name & Other 2000" or "Name et al. 2014"
IN_TEXT = re.compile(r"\b[A-Z][A-Za-z'-]+(?: et al\.| & [A-Z][A-Za-z'-]+)? (?:19|20)\d{2}\b")


@cache
def bibliography() -> dict[str, dict[str, str]]:
    """Every citable work: key -> ``{"cite": in-text form, "reference": formatted entry}``."""
    path = resources.files("bids_dfc") / "data" / "references.json"
    return json.loads(path.read_text(encoding="utf-8"))


def cited_keys(text: str) -> tuple[list[str], list[str]]:
    """Works cited in ``text``: their bibliography keys in first-cited order, and the
    in-text citations (:data:`IN_TEXT`) that have no bibliography entry.

    >>> cited_keys("DCC (Engle 2002; Lindquist et al. 2014), FD (Nobody 1999; Engle 2002).")
    (['engle2002', 'lindquist2014'], ['Nobody 1999'])
    """
    by_cite = {entry["cite"]: key for key, entry in bibliography().items()}
    found = list(dict.fromkeys(IN_TEXT.findall(text)))
    return [by_cite[c] for c in found if c in by_cite], [c for c in found if c not in by_cite]
