"""The methods text's references: each builder declares the keys of the works its
``__desc__`` cites (``workflow.__citations__``), and ``bids_dfc/data/references.json`` holds
one entry per key. The real participant graph is built (not run) with every branch on."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from nipype.pipeline import engine as pe

from bids_dfc.cli.parser import parse_args
from bids_dfc.inputs.fmriprep import FmriprepRun
from bids_dfc.inputs.raw import SubjectData
from bids_dfc.preproc.fmriprep_confounds import STRATEGIES
from bids_dfc.reports import methods
from bids_dfc.reports.citations import IN_TEXT, bibliography, cited_keys
from bids_dfc.reports.group import METHODS as GROUP_METHODS
from bids_dfc.reports.methods import collect_methods, workflow_citations
from bids_dfc.reports.trial import TRIAL_CITED
from bids_dfc.workflows.anat import TEMPLATE_CITATIONS, _anat_desc
from bids_dfc.workflows.base import init_bids_dfc_wf
from bids_dfc.workflows.fmriprep import init_fmriprep_bold_wf


def _subject(root: Path) -> SubjectData:
    bold = [root / f"sub-01/func/sub-01_task-rest_run-{r}_bold.nii.gz" for r in ("1", "2")]
    return SubjectData(subject="01", t1w=root / "sub-01/anat/sub-01_T1w.nii.gz", bold=bold,
                       bold_metadata={str(b): {"RepetitionTime": 2.0} for b in bold})


def _options(root: Path) -> dict[str, list[str]]:
    """Command lines covering every builder and branch (atlas, own seeds, both seed spaces,
    template-space BOLD, censoring, detected dummies, sloppy or not, the SD bootstrap)."""
    for name in ("atlas.nii.gz", "labels.tsv", "seeds.tsv"):
        (root / name).touch()
    extra = ["--atlas", str(root / "atlas.nii.gz"), "--atlas-labels", str(root / "labels.tsv"),
             "--seeds", str(root / "seeds.tsv")]
    return {
        "default": [],
        "native_all": extra + ["--output-spaces", "native", "template", "--fd-threshold", "0.5",
                               "--dummy-scans", "auto", "--dcc-mode", "joint", "--sloppy",
                               "--dfc-bootstrap", "100"],
        "template_all": extra + ["--seed-space", "template", "--network-weighting", "voxel"],
    }


@pytest.fixture(scope="module")
def graphs(tmp_path_factory) -> dict[str, pe.Workflow]:
    root = tmp_path_factory.mktemp("bids")
    out = {}
    for label, args in _options(root).items():
        cfg = parse_args([str(root), str(root / "out"), "participant", *args])
        out[label] = init_bids_dfc_wf(cfg, [_subject(root)]).get_node("sub_01_wf")
    # the fMRIPrep ingress, once per denoising strategy (graphs only: empty files)
    for name in ("bold.nii.gz", "b.nii.gz", "m.nii.gz", "c.tsv", "a.nii.gz"):
        (root / name).touch()
    run = FmriprepRun(source=root / "bold.nii.gz", entities={"sub": "01"},
                      template="MNI152NLin2009cAsym", resolution=None, bold=root / "b.nii.gz",
                      mask=root / "m.nii.gz", boldref=None, confounds=root / "c.tsv", tr=2.0,
                      metadata={}, aroma_bold=root / "a.nii.gz")
    for strategy in STRATEGIES:
        out[f"fmriprep_{strategy}"] = init_fmriprep_bold_wf(
            run=run, std2anat=None, version="24.1.1", seed_space="template",
            strategy=strategy, n_compcor=5, dummy_scans="auto", band_pass=(0.01, 0.1),
            smoothing_fwhm=4.0, fd_threshold=0.5, name=f"fmriprep_{strategy.replace('+', '_')}")
    return out


def _workflows(wf: pe.Workflow):
    """``wf`` and every sub-workflow below it."""
    yield wf
    for node in wf._graph.nodes():
        if isinstance(node, pe.Workflow):
            yield from _workflows(node)


def test_bibliography_entries_are_well_formed():
    for key, entry in bibliography().items():
        year = key[-4:]
        assert re.fullmatch(r"[a-z]+(19|20)\d{2}", key), key
        assert set(entry) == {"cite", "reference"}, key
        # journal articles "2002;20(3)", books "Guilford Press; 2022."
        assert entry["cite"].endswith(f" {year}"), key
        assert re.search(rf"\b{year}(;|\.$)", entry["reference"]), key
        assert entry["cite"].split()[0] in entry["reference"].split(",")[0], key


def test_every_cited_key_has_an_entry(graphs):
    entries = bibliography()
    for label, wf in graphs.items():
        missing = [k for k in workflow_citations(wf) if k not in entries]
        assert not missing, f"{label}: cited keys without a bibliography entry: {missing}"


def _templateflow_anat_keys() -> set[str]:
    """Keys of the anatomical text for each named TemplateFlow template (the test machine
    has no TemplateFlow files, so the graphs above always use the bundled template)."""
    keys = set()
    for name in TEMPLATE_CITATIONS:
        spec = SimpleNamespace(name=name, resolution=2, source="templateflow",
                               has_tissue_priors=False)
        text, cited = _anat_desc(spec, sloppy=False)
        assert [bibliography()[k]["cite"] for k in cited] == IN_TEXT.findall(text), name
        keys |= set(cited)
    return keys


def test_every_entry_is_cited_by_some_builder(graphs):
    cited = {k for wf in graphs.values() for k in workflow_citations(wf)}
    cited |= _templateflow_anat_keys()
    cited |= set(cited_keys(GROUP_METHODS)[0])  # the group report's methods
    cited |= set(cited_keys(" ".join(TRIAL_CITED.values()))[0])  # and the trial's
    assert not set(bibliography()) - cited, f"never cited: {sorted(set(bibliography()) - cited)}"


def test_each_text_cites_exactly_its_keys(graphs):
    """The keys of a builder are the works its own text cites, in the text's order: a
    citation in the prose without a key (or a key the prose does not cite) fails."""
    entries = bibliography()
    seen = 0
    for wf in (w for g in graphs.values() for w in _workflows(g)):
        text = getattr(wf, "__desc__", None) or ""
        keys = tuple(getattr(wf, "__citations__", ()))
        assert not re.search(r"et al\.(?! (?:19|20)\d{2})", text), f"{wf.name}: year missing"
        in_text = list(dict.fromkeys(IN_TEXT.findall(text)))
        assert [entries[k]["cite"] for k in keys] == in_text, wf.name
        assert cited_keys(text) == (list(keys), []), wf.name  # what the report lists
        seen += bool(keys)
    assert seen >= 4  # participant, anat, bold and connectivity workflows cite works


def test_references_follow_first_citation_without_repeats(graphs):
    wf = graphs["native_all"]
    text = collect_methods(wf)
    refs = methods.split_references(text)[1]
    keys = workflow_citations(wf)
    assert refs == [bibliography()[k]["reference"] for k in keys]
    assert len(set(refs)) == len(refs)
    assert keys[:3] == ["gorgolewski2011", "avants2008", "tustison2021"]  # the participant's
    assert "lindquist2019" in keys and "engle2002" in keys
    body = text.split("\n\nSoftware versions:", 1)[0]
    positions = [body.find(bibliography()[k]["cite"]) for k in keys]
    assert -1 not in positions and positions == sorted(positions)


def test_a_key_without_entry_is_an_error():
    wf = pe.Workflow(name="a")
    wf.__desc__ = "Series were correlated (Nobody 1999)."
    wf.__citations__ = ("nobody1999",)
    with pytest.raises(KeyError, match="nobody1999"):
        collect_methods(wf)
