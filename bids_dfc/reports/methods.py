"""Methods text generated from the workflow graph (every builder sets ``__desc__``).

:func:`collect_methods` walks a nipype workflow and its sub-workflows (in execution order),
joins their ``__desc__`` (and ``__postdesc__``) texts once each, then adds the software
versions actually installed and the references the text cites. Each builder declares the
works its text cites as keys of the bibliography (``bids_dfc/data/references.json``) in
``workflow.__citations__``, next to its ``__desc__``; ``tests/test_citations.py`` checks that
every key has an entry and every entry is cited.

The texts are markdown-light: ``*emphasis*`` (and ``**strong**``) as in fMRIPrep's
boilerplate; the participant report renders it. Works are cited in the author-year form
:data:`bids_dfc.reports.citations.IN_TEXT` matches, exactly as the entry's ``cite`` spells
it, so :func:`bids_dfc.reports.citations.cited_keys` finds the works any text (a figure
caption too) cites.
"""

from __future__ import annotations

from bids_dfc.derivatives import software_versions
from bids_dfc.reports.citations import bibliography

__all__ = ["REFERENCES", "collect_methods", "package_versions", "split_references",
           "workflow_citations", "workflow_descriptions"]

#: distributions whose versions the methods text reports, in this order
PACKAGES = ("bids_dfc", "nipype", "antspyx", "nilearn", "nibabel", "numpy", "scipy", "pandas")
#: first line of the references paragraph that ends :func:`collect_methods`' text
REFERENCES = "References:"


def split_references(text: str) -> tuple[list[str], list[str]]:
    """A :func:`collect_methods` text as its paragraphs and its reference lines (empty when
    the text has no references paragraph)."""
    paragraphs = [p.strip() for p in text.split("\n\n") if p.strip()]
    if paragraphs and paragraphs[-1].startswith(REFERENCES + "\n"):
        return paragraphs[:-1], paragraphs[-1].splitlines()[1:]
    return paragraphs, []


def package_versions(packages=PACKAGES) -> dict[str, str]:
    """Installed version of each distribution (``"not installed"`` when absent)."""
    return software_versions(*packages)


def _ordered_children(workflow):
    """Sub-workflows of ``workflow`` in execution (topological) order, ties by name."""
    import networkx as nx
    from nipype.pipeline.engine import Workflow

    graph = workflow._graph
    try:
        order = list(nx.lexicographical_topological_sort(graph, key=lambda n: n.name))
    except nx.NetworkXUnfeasible:
        order = sorted(graph.nodes(), key=lambda n: n.name)
    return [n for n in order if isinstance(n, Workflow)]


def _visit(workflow, texts: list[str], keys: list[str]) -> None:
    """Depth-first: ``__desc__``, the sub-workflows in execution order, ``__postdesc__``;
    each text once, each cited key once (in first-cited order)."""

    def add(text) -> None:
        text = (text or "").strip()
        if text and text not in texts:
            texts.append(text)

    add(getattr(workflow, "__desc__", None))
    keys += [k for k in getattr(workflow, "__citations__", ()) if k not in keys]
    for child in _ordered_children(workflow):
        _visit(child, texts, keys)
    add(getattr(workflow, "__postdesc__", None))


def _walk(workflow) -> tuple[list[str], list[str]]:
    texts: list[str] = []
    keys: list[str] = []
    _visit(workflow, texts, keys)
    return texts, keys


def workflow_descriptions(workflow) -> list[str]:
    """``__desc__`` texts of ``workflow`` and all its sub-workflows, each text once."""
    return _walk(workflow)[0]


def workflow_citations(workflow) -> list[str]:
    """Bibliography keys cited by ``workflow`` and its sub-workflows, in first-cited order."""
    return _walk(workflow)[1]


def collect_methods(workflow) -> str:
    """Methods paragraphs generated from a nipype workflow.

    Parameters
    ----------
    workflow : nipype.pipeline.engine.Workflow
        Typically one participant's workflow; every builder sets ``__desc__`` and the keys
        of the works it cites, ``__citations__``.

    Returns
    -------
    str
        Paragraphs separated by blank lines: the joined descriptions, a software-versions
        paragraph, then ``References:`` with one cited reference per line, in first-cited
        order.

    Raises
    ------
    KeyError
        When a cited key has no entry in the bibliography.

    Examples
    --------
    >>> from nipype.pipeline import engine as pe
    >>> wf = pe.Workflow(name="a")
    >>> wf.__desc__ = "Series were correlated with DCC (Engle 2002)."
    >>> wf.__citations__ = ("engle2002",)
    >>> text = collect_methods(wf)
    >>> text.startswith("Series were correlated with DCC") and "Engle R." in text
    True
    """
    texts, keys = _walk(workflow)
    versions = package_versions()
    software = "Software versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + "."
    entries = bibliography()
    missing = [k for k in keys if k not in entries]
    if missing:
        raise KeyError(f"cited keys without a bibliography entry: {missing}")
    refs = [entries[k]["reference"] for k in keys]
    parts = texts + [software]
    if refs:
        parts.append(REFERENCES + "\n" + "\n".join(refs))
    return "\n\n".join(parts)
