"""Methods text generated from the workflow graph (every builder sets ``__desc__``).

:func:`collect_methods` walks a nipype workflow and its sub-workflows (in execution order),
joins their ``__desc__`` (and ``__postdesc__``) texts once each, then adds the software
versions actually installed and the references the text cites.
"""

from __future__ import annotations

import re
from importlib import metadata

__all__ = ["REFERENCES", "collect_methods", "package_versions", "workflow_descriptions"]

_DCC = r"\bdcc\b|conditional correlation"

#: (regular expression that triggers the reference, reference), matched on lower-case text
REFERENCES = (
    ("nipype", "Gorgolewski K, et al. Nipype: a flexible, lightweight and extensible "
               "neuroimaging data processing framework in Python. Front Neuroinform. 2011;5:13."),
    (r"\bants", "Avants BB, Epstein CL, Grossman M, Gee JC. Symmetric diffeomorphic image "
             "registration with cross-correlation. Med Image Anal. 2008;12(1):26-41."),
    (r"\bants", "Tustison NJ, et al. The ANTsX ecosystem for quantitative biological "
             "and medical imaging. Sci Rep. 2021;11:9068."),
    (r"\bn4\b", "Tustison NJ, et al. N4ITK: improved N3 bias correction. IEEE Trans "
           "Med Imaging. 2010;29(6):1310-1320."),
    ("atropos", "Avants BB, Tustison NJ, Wu J, Cook PA, Gee JC. An open source multivariate "
                "framework for n-tissue segmentation with evaluation on public data. "
                "Neuroinformatics. 2011;9(4):381-400."),
    ("compcor", "Behzadi Y, Restom K, Liau J, Liu TT. A component based noise correction "
                "method (CompCor) for BOLD and perfusion based fMRI. NeuroImage. "
                "2007;37(1):90-101."),
    ("compcor", "Muschelli J, et al. Reduction of motion-related artifacts in resting state "
                "fMRI using aCompCor. NeuroImage. 2014;96:22-35."),
    ("framewise displacement", "Power JD, Barnes KA, Snyder AZ, Schlaggar BL, Petersen SE. "
                               "Spurious but systematic correlations in functional "
                               "connectivity MRI networks arise from subject motion. "
                               "NeuroImage. 2012;59(3):2142-2154."),
    ("garch", "Bollerslev T. Generalized autoregressive conditional heteroskedasticity. "
              "J Econometrics. 1986;31(3):307-327."),
    (_DCC, "Engle R. Dynamic conditional correlation: a simple class of multivariate "
            "generalized autoregressive conditional heteroskedasticity models. J Bus Econ "
            "Stat. 2002;20(3):339-350."),
    (_DCC, "Lindquist MA, Xu Y, Nebel MB, Caffo BS. Evaluating dynamic bivariate "
            "correlations in resting-state fMRI: a comparison study and a new approach. "
            "NeuroImage. 2014;101:531-546."),
    ("nilearn", "Abraham A, et al. Machine learning for neuroimaging with scikit-learn. Front "
                "Neuroinform. 2014;8:14."),
    (r"mni152|2009", "Fonov V, et al. Unbiased average age-appropriate atlases for pediatric "
               "studies. NeuroImage. 2011;54(1):313-327."),
)

#: distributions whose versions the methods text reports, in this order
PACKAGES = ("bids_dfc", "nipype", "antspyx", "nilearn", "nibabel", "numpy", "scipy", "pandas")


def package_versions(packages=PACKAGES) -> dict[str, str]:
    """Installed version of each distribution (``"not installed"`` when absent)."""
    out = {}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            if name == "bids_dfc":
                from bids_dfc import __version__

                out[name] = __version__
            else:
                out[name] = "not installed"
    return out


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


def workflow_descriptions(workflow) -> list[str]:
    """``__desc__`` texts of ``workflow`` and all its sub-workflows, each text once."""
    seen, texts = set(), []

    def visit(wf):
        for attr in ("__desc__",):
            text = getattr(wf, attr, None)
            if text and text.strip() not in seen:
                seen.add(text.strip())
                texts.append(text.strip())
        for child in _ordered_children(wf):
            visit(child)
        text = getattr(wf, "__postdesc__", None)
        if text and text.strip() not in seen:
            seen.add(text.strip())
            texts.append(text.strip())

    visit(workflow)
    return texts


def collect_methods(workflow) -> str:
    """Methods paragraphs generated from a nipype workflow.

    Parameters
    ----------
    workflow : nipype.pipeline.engine.Workflow
        Typically one participant's workflow; every builder sets ``__desc__``.

    Returns
    -------
    str
        Paragraphs separated by blank lines: the joined descriptions, a software-versions
        paragraph, then ``References:`` with one cited reference per line.

    Examples
    --------
    >>> from nipype.pipeline import engine as pe
    >>> wf = pe.Workflow(name="a")
    >>> wf.__desc__ = "Series were correlated with DCC."
    >>> text = collect_methods(wf)
    >>> text.startswith("Series were correlated with DCC.") and "Engle R." in text
    True
    """
    texts = workflow_descriptions(workflow)
    versions = package_versions()
    software = "Software versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + "."
    joined = " ".join(texts).lower() + " nipype"
    refs = []
    for key, ref in REFERENCES:
        if re.search(key, joined) and ref not in refs:
            refs.append(ref)
    parts = texts + [software]
    if refs:
        parts.append("References:\n" + "\n".join(refs))
    return "\n\n".join(parts)
