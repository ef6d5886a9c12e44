"""The participant workflow graph is built from the options (no heavy step is run here)."""

from __future__ import annotations

from pathlib import Path

from bids_dfc.cli.parser import parse_args
from bids_dfc.inputs.raw import SubjectData
from bids_dfc.workflows.base import init_bids_dfc_wf


def _subject(root: Path, runs=("1", "2")) -> SubjectData:
    bold = [root / f"sub-01/func/sub-01_task-rest_run-{r}_bold.nii.gz" for r in runs]
    return SubjectData(subject="01", t1w=root / "sub-01/anat/sub-01_T1w.nii.gz", bold=bold,
                       bold_metadata={str(b): {"RepetitionTime": 2.0} for b in bold})


def test_one_anat_and_one_pipeline_per_run(tmp_path):
    cfg = parse_args([str(tmp_path), str(tmp_path / "out"), "participant", "--sloppy"])
    wf = init_bids_dfc_wf(cfg, [_subject(tmp_path)])
    names = wf.list_node_names()
    assert sum(n.endswith("anat_wf.register") for n in names) == 1
    for run in ("1", "2"):
        prefix = f"sub_01_wf.bold_sub_01_task_rest_run_{run}"
        assert any(n.startswith(prefix + "_wf.") for n in names)
        assert any(n.startswith(prefix + "_connectivity_wf.") for n in names)
        assert any(n.startswith(prefix + "_connectivity_derivatives_wf.") for n in names)


def test_template_seed_space_adds_template_space_bold(tmp_path):
    native = init_bids_dfc_wf(
        parse_args([str(tmp_path), str(tmp_path / "o"), "participant"]), [_subject(tmp_path)]
    )
    template = init_bids_dfc_wf(
        parse_args([str(tmp_path), str(tmp_path / "o"), "participant", "--seed-space",
                    "template"]), [_subject(tmp_path)]
    )  # fmt: skip
    # the template-space BOLD branch only exists when seeds (or the user) need it
    assert len(template.list_node_names()) > len(native.list_node_names())


def _denoise_groups(wf) -> list[list[str]]:
    return [wf.get_node(n).inputs.groups for n in wf.list_node_names()
            if n.rsplit(".", 1)[-1] in ("denoise", "denoise_std")]


def test_confounds_option_reaches_every_denoising_step(tmp_path):
    """aCompCor alone by default (the study's model); --confounds adds the motion parameters,
    in native and template space alike."""
    base = [str(tmp_path), str(tmp_path / "o"), "participant", "--output-spaces", "native",
            "template"]
    default = init_bids_dfc_wf(parse_args(base), [_subject(tmp_path, runs=("1",))])
    assert _denoise_groups(default) == [["acompcor"], ["acompcor"]]
    both = init_bids_dfc_wf(parse_args(base + ["--confounds", "acompcor", "motion"]),
                            [_subject(tmp_path, runs=("1",))])
    assert _denoise_groups(both) == [["acompcor", "motion"], ["acompcor", "motion"]]
