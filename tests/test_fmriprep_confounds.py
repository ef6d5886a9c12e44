"""Denoising strategies on fMRIPrep confounds (bids_dfc/preproc/fmriprep_confounds.py).

Inputs: the real fMRIPrep confounds files nilearn ships, of two generations:
``test_desc-confounds_regressors`` (fMRIPrep 1.4-20.2 names: 126 ``a_comp_cor_*`` of three
masks told apart by the JSON's ``Mask``; 1 non-steady-state volume; ``aroma_motion_*``),
``test-v21_desc-confounds_timeseries`` (>= 21.0 names: ``w_comp_cor_*``/``c_comp_cor_*``;
3 non-steady-state volumes) and ``no_nonsteady_desc-confounds_regressors`` (no JSON, no
non-steady-state volume). The expected column names below were read off these files.

Outside reference: nilearn's ``load_confounds`` / ``load_confounds_strategy``
(nilearn.interfaces.fmriprep), fed through the file arrangement they need (an image name
beside the confounds file, in a temporary folder).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nilearn.interfaces.fmriprep as nilearn_fmriprep
import numpy as np
import pandas as pd
import pytest
from nilearn import signal as nsignal
from scipy import signal as sps

from bids_dfc.errors import InputError
from bids_dfc.preproc.denoise import denoise_fmriprep_core
from bids_dfc.preproc.fmriprep_confounds import (
    STRATEGIES,
    check_columns,
    describe,
    expand,
    load_strategy,
)
from bids_dfc.preproc.signal import denoise

DATA = Path(nilearn_fmriprep.__file__).parent / "data"
OLD = DATA / "test_desc-confounds_regressors.tsv"
V21 = DATA / "test-v21_desc-confounds_timeseries.tsv"
NO_NSS = DATA / "no_nonsteady_desc-confounds_regressors.tsv"
N_COMPCOR = 5

P24 = [
    "trans_x", "trans_x_derivative1", "trans_x_power2", "trans_x_derivative1_power2",
    "trans_y", "trans_y_derivative1", "trans_y_power2", "trans_y_derivative1_power2",
    "trans_z", "trans_z_derivative1", "trans_z_power2", "trans_z_derivative1_power2",
    "rot_x", "rot_x_derivative1", "rot_x_power2", "rot_x_derivative1_power2",
    "rot_y", "rot_y_derivative1", "rot_y_power2", "rot_y_derivative1_power2",
    "rot_z", "rot_z_derivative1", "rot_z_power2", "rot_z_derivative1_power2",
]  # fmt: skip
TISSUE12 = [
    "white_matter", "white_matter_derivative1", "white_matter_power2",
    "white_matter_derivative1_power2",
    "csf", "csf_derivative1", "csf_power2", "csf_derivative1_power2",
    "global_signal", "global_signal_derivative1", "global_signal_power2",
    "global_signal_derivative1_power2",
]  # fmt: skip
#: fMRIPrep 1.4-20.2 file: combined mask a_comp_cor_00-56, CSF 57-69, WM 70-125 (JSON Mask)
OLD_COMPCOR = ["a_comp_cor_70", "a_comp_cor_71", "a_comp_cor_72", "a_comp_cor_73",
               "a_comp_cor_74", "a_comp_cor_57", "a_comp_cor_58", "a_comp_cor_59",
               "a_comp_cor_60", "a_comp_cor_61"]
OLD_COSINES = ["cosine00", "cosine01", "cosine02", "cosine03"]
#: fMRIPrep >= 21 file: only 4 WM and 3 CSF components reach its 50 % variance criterion
V21_COMPCOR = ["w_comp_cor_00", "w_comp_cor_01", "w_comp_cor_02", "w_comp_cor_03",
               "c_comp_cor_00", "c_comp_cor_01", "c_comp_cor_02"]
V21_COSINES = ["cosine00"]
EXPECTED = {
    (OLD, "acompcor"): OLD_COMPCOR + OLD_COSINES,
    (OLD, "24P"): P24,
    (OLD, "36P"): P24 + TISSUE12,
    (OLD, "acompcor+24P"): OLD_COMPCOR + OLD_COSINES + P24,
    (OLD, "aroma"): ["white_matter", "csf"],
    (V21, "acompcor"): V21_COMPCOR + V21_COSINES,
    (V21, "24P"): P24,
    (V21, "36P"): P24 + TISSUE12,
    (V21, "acompcor+24P"): V21_COMPCOR + V21_COSINES + P24,
    (NO_NSS, "24P"): P24,
    (NO_NSS, "36P"): P24 + TISSUE12,
    (NO_NSS, "aroma"): ["white_matter", "csf"],
}
#: non-steady-state volumes flagged in each file (one-hot non_steady_state_outlierNN columns)
N_DUMMY = {OLD: 1, V21: 3, NO_NSS: 0}
N_VOLUMES = 30


def _load(path, strategy, fd_threshold=None, dummy_scans="auto", n_compcor=N_COMPCOR):
    return load_strategy(path, strategy, n_compcor=n_compcor, fd_threshold=fd_threshold,
                         dummy_scans=dummy_scans)


@pytest.mark.parametrize(("path", "strategy"), list(EXPECTED), ids=lambda v: getattr(v, "stem", v))
def test_columns_shape_and_dummy_volumes(path, strategy):
    regressors, keep, info = _load(path, strategy)
    assert list(regressors.columns) == EXPECTED[path, strategy]
    n_rows = N_VOLUMES - N_DUMMY[path]
    assert regressors.shape == (n_rows, len(EXPECTED[path, strategy]))
    assert list(regressors.index) == list(range(N_DUMMY[path], N_VOLUMES))
    assert info["NonSteadyStateVolumes"] == N_DUMMY[path]
    assert info["Regressors"] == EXPECTED[path, strategy]
    assert keep.shape == (n_rows,) and keep.all()
    assert np.isfinite(regressors.to_numpy()).all()
    assert info["BoldDesc"] == STRATEGIES[strategy].bold_desc


def test_dummy_count_matches_an_independent_count():
    for path, n in N_DUMMY.items():
        table = pd.read_csv(path, sep="\t")
        flags = table.filter(like="non_steady_state_outlier")
        assert int((flags.sum(axis=1) > 0).sum()) == n
        assert _load(path, "24P")[2]["NonSteadyStateVolumes"] == n


def test_selected_components_are_the_largest_per_mask_in_the_json():
    """Independent of the numbering: the chosen ones have the top VarianceExplained."""
    for path, chosen in ((OLD, OLD_COMPCOR), (V21, V21_COMPCOR)):
        meta = json.loads(path.with_suffix(".json").read_text())
        columns = set(pd.read_csv(path, sep="\t", nrows=0).columns)
        for mask in ("WM", "CSF"):
            ranked = sorted((c for c, m in meta.items() if isinstance(m, dict)
                             and m.get("Mask") == mask and c in columns
                             and c.split("_")[0] in ("a", "w", "c")),
                            key=lambda c: -meta[c]["VarianceExplained"])
            mine = [c for c in chosen if meta[c]["Mask"] == mask]
            assert mine == ranked[:N_COMPCOR]


def test_json_key_order_is_not_component_order():
    """The trap the numeric ordering avoids: the JSON lists a_comp_cor_100 first for WM."""
    meta = json.loads(OLD.with_suffix(".json").read_text())
    wm_in_json_order = [c for c, m in meta.items()
                        if c.startswith("a_comp_cor") and m.get("Mask") == "WM"]
    assert wm_in_json_order[0] == "a_comp_cor_100"
    assert _load(OLD, "acompcor")[2]["CompCor"]["WM"][0] == "a_comp_cor_70"


@pytest.mark.parametrize("path", [OLD, V21, NO_NSS], ids=lambda p: p.stem)
def test_fd_censoring_against_pandas(path):
    table = pd.read_csv(path, sep="\t")
    fd = table["framewise_displacement"]
    threshold = float(fd.iloc[N_DUMMY[path]:].median())
    expected = fd.index[(fd > threshold) & (fd.index >= N_DUMMY[path])].tolist()
    regressors, keep, info = _load(path, "24P", fd_threshold=threshold)
    assert info["CensoredVolumes"] == expected
    assert regressors.index[~keep].tolist() == expected
    assert 0 < len(expected) < len(regressors)


def test_derivatives_equal_fmriprep_columns_where_they_do_not_span_a_dummy():
    """expand() recomputes; fMRIPrep's own columns are the independent values."""
    for path in (OLD, V21, NO_NSS):
        table = pd.read_csv(path, sep="\t")
        first = N_DUMMY[path] + 1
        ours = expand(table.iloc[N_DUMMY[path]:], ["trans_x", "rot_z", "csf",
                                                   "global_signal"])
        for col in ours:
            np.testing.assert_allclose(ours.loc[first + 1:, col], table.loc[first + 1:, col],
                                       rtol=1e-6, atol=1e-9, err_msg=f"{path.name} {col}")


def test_first_kept_derivative_does_not_jump_from_a_dummy_volume():
    """fMRIPrep's derivative at the first steady volume differences against a dummy."""
    table = pd.read_csv(V21, sep="\t")
    regressors = _load(V21, "36P")[0]
    jump = table.loc[3, "global_signal_derivative1"]
    assert abs(jump) > 1000  # the dummy volumes' bright global signal
    forward = table.loc[4, "global_signal"] - table.loc[3, "global_signal"]
    assert regressors.loc[3, "global_signal_derivative1"] == pytest.approx(forward)


# ---- outside reference: nilearn ------------------------------------------------------

def _arrange(tmp_path, path, desc="preproc", space=None):
    """nilearn finds the confounds from an image's name: put both in one folder."""
    stem = "sub-01_task-rest"
    suffix = path.name.rsplit("_", 1)[1]  # regressors.tsv / timeseries.tsv
    shutil.copy(path, tmp_path / f"{stem}_desc-confounds_{suffix}")
    if path.with_suffix(".json").is_file():
        shutil.copy(path.with_suffix(".json"),
                    tmp_path / f"{stem}_desc-confounds_{suffix[:-4]}.json")
    image = tmp_path / f"{stem}{'_space-' + space if space else ''}_desc-{desc}_bold.nii.gz"
    image.touch()
    return str(image)


NILEARN_CALLS = {
    "acompcor": dict(strategy=("high_pass", "compcor"), compcor="anat_separated",
                     n_compcor=N_COMPCOR),
    "24P": dict(strategy=("motion",), motion="full"),
    "36P": dict(strategy=("motion", "wm_csf", "global_signal"), motion="full",
                wm_csf="full", global_signal="full"),
}


def _agree(ours: pd.DataFrame, theirs: pd.DataFrame, n_dummy: int):
    assert set(ours.columns) == set(theirs.columns)
    theirs = theirs[ours.columns]
    # nilearn keeps every volume and fMRIPrep's derivatives; from the second steady volume
    # on (its derivative no longer spans a dropped one) the values agree
    np.testing.assert_allclose(ours.iloc[1:].to_numpy(),
                               theirs.iloc[n_dummy + 1:].to_numpy(), rtol=1e-6, atol=1e-9)
    plain = [c for c in ours.columns if "derivative" not in c]
    np.testing.assert_allclose(ours[plain].iloc[0], theirs[plain].iloc[n_dummy], rtol=1e-6)


@pytest.mark.parametrize("path", [OLD, V21], ids=lambda p: p.stem)
@pytest.mark.parametrize("strategy", list(NILEARN_CALLS))
def test_agrees_with_nilearn_load_confounds(tmp_path, path, strategy):
    image = _arrange(tmp_path, path)
    theirs, sample_mask = nilearn_fmriprep.load_confounds(image, demean=False,
                                                         **NILEARN_CALLS[strategy])
    ours, keep, info = _load(path, strategy)
    _agree(ours, theirs, N_DUMMY[path])
    np.testing.assert_array_equal(sample_mask, ours.index[keep])


@pytest.mark.parametrize("path", [OLD, V21], ids=lambda p: p.stem)
def test_acompcor_24p_agrees_with_nilearn_compcor_strategy(tmp_path, path):
    """nilearn's 'compcor' preset (high-pass + 24 motion + CompCor) with separate masks."""
    image = _arrange(tmp_path, path)
    theirs, _ = nilearn_fmriprep.load_confounds_strategy(
        image, "compcor", compcor="anat_separated", n_compcor=N_COMPCOR, demean=False)
    _agree(_load(path, "acompcor+24P")[0], theirs, N_DUMMY[path])


def test_aroma_agrees_with_nilearn_ica_aroma_strategy_but_its_cosines(tmp_path):
    image = _arrange(tmp_path, OLD, desc="smoothAROMAnonaggr", space="MNI152NLin6Asym")
    theirs, _ = nilearn_fmriprep.load_confounds_strategy(image, "ica_aroma", demean=False)
    # the band-pass removes the drifts; nilearn adds fMRIPrep's cosines (high_pass)
    assert set(theirs.columns) == {"white_matter", "csf", *OLD_COSINES}
    _agree(_load(OLD, "aroma")[0], theirs.drop(columns=OLD_COSINES), N_DUMMY[OLD])


@pytest.mark.parametrize("path", [OLD, V21], ids=lambda p: p.stem)
def test_fd_censoring_agrees_with_nilearn_scrub(tmp_path, path):
    image = _arrange(tmp_path, path)
    threshold = 0.2 if path is OLD else 1.0
    _, sample_mask = nilearn_fmriprep.load_confounds(
        image, strategy=("scrub",), scrub=0, fd_threshold=threshold,
        std_dvars_threshold=np.inf)
    ours, keep, _ = _load(path, "24P", fd_threshold=threshold)
    assert 0 < (~keep).sum()
    np.testing.assert_array_equal(sample_mask, ours.index[keep])


# ---- fMRIPrep 1.4-20.2 encoding derived from the >= 21 file -----------------------------

def _as_fmriprep_20(tmp_path: Path) -> Path:
    """The v21 file with its w/c/a components renumbered as one a_comp_cor_* series."""
    table = pd.read_csv(V21, sep="\t")
    meta = json.loads(V21.with_suffix(".json").read_text())
    order = ([c for c in table if c.startswith("a_comp_cor")]
             + [c for c in table if c.startswith("c_comp_cor")]
             + [c for c in table if c.startswith("w_comp_cor")])
    rename = {old: f"a_comp_cor_{k:02d}" for k, old in enumerate(order)}
    new_meta = {rename.get(k, k): v for k, v in meta.items()}
    out = tmp_path / "sub-01_task-rest_desc-confounds_regressors.tsv"
    table.rename(columns=rename).to_csv(out, sep="\t", index=False, na_rep="n/a")
    out.with_suffix(".json").write_text(json.dumps(new_meta, sort_keys=True))
    return out


def test_mask_metadata_encoding_gives_the_same_regressors(tmp_path):
    derived = _as_fmriprep_20(tmp_path)
    ours, _, info = _load(derived, "acompcor")
    # combined 00-04, CSF 05-07, WM 08-11: WM first, then CSF
    assert list(ours.columns) == ["a_comp_cor_08", "a_comp_cor_09", "a_comp_cor_10",
                                  "a_comp_cor_11", "a_comp_cor_05", "a_comp_cor_06",
                                  "a_comp_cor_07", "cosine00"]
    assert info["CompCor"]["Source"].startswith("a_comp_cor_* selected by the JSON's Mask")
    reference = _load(V21, "acompcor")[0]
    np.testing.assert_array_equal(ours.to_numpy(), reference.to_numpy())


def test_fewer_components_than_requested_are_taken_and_said():
    info = _load(V21, "acompcor")[2]
    assert info["CompCor"]["WM"] == V21_COMPCOR[:4]
    assert "fewer aCompCor components than the 5 requested (WM: 4, CSF: 3)" in \
        info["Warnings"][0]
    assert not _load(OLD, "acompcor")[2]["Warnings"]


def test_variance_fraction_per_mask():
    # WM cumulative 0.260, 0.375, ...; CSF 0.238, 0.417, ... (the v21 JSON)
    info = _load(V21, "acompcor", n_compcor=0.3)[2]
    assert info["CompCor"]["WM"] == ["w_comp_cor_00", "w_comp_cor_01"]
    assert info["CompCor"]["CSF"] == ["c_comp_cor_00", "c_comp_cor_01"]
    assert "as many as explain 30% of the variance per mask" in info["Regresses"]


def test_dummy_scans_override():
    regressors, _, info = _load(V21, "24P", dummy_scans=5)
    assert regressors.index[0] == 5 and len(regressors) == 25
    assert info["NonSteadyStateSource"] == "--dummy-scans"
    with pytest.raises(InputError, match="keeps volumes fMRIPrep flagged"):
        _load(V21, "24P", dummy_scans=2)
    with pytest.raises(InputError, match="does not fit a run of 30 volumes"):
        _load(V21, "24P", dummy_scans=28)


# ---- missing columns ---------------------------------------------------------------------

def _without(tmp_path, path, drop, json_too=True, name=None):
    table = pd.read_csv(path, sep="\t")
    table = table.drop(columns=[c for c in table if c.startswith(drop)])
    out = tmp_path / (name or path.name)
    table.to_csv(out, sep="\t", index=False, na_rep="n/a")
    if json_too and path.with_suffix(".json").is_file():
        shutil.copy(path.with_suffix(".json"), out.with_suffix(".json"))
    return out


def test_missing_column_messages(tmp_path):
    name = "sub-01_task-rest_desc-confounds_timeseries.tsv"
    none = _without(tmp_path, V21, ("a_comp_cor", "c_comp_cor", "w_comp_cor"), name=name)
    assert check_columns(none, "acompcor") == [
        f"{name}: strategy 'acompcor' needs w_comp_cor_* and c_comp_cor_* (or a_comp_cor_* "
        "with Mask metadata in the JSON); none found"]
    assert check_columns(V21, "aroma") == [
        "test-v21_desc-confounds_timeseries.tsv: strategy 'aroma' needs aroma_motion_* "
        "columns, written only by fMRIPrep 1.x-23.0 run with --use-aroma (later versions no "
        "longer run ICA-AROMA; its successor fMRIPost-AROMA is not read yet); none found"]
    assert check_columns(NO_NSS, "acompcor") == [
        "no_nonsteady_desc-confounds_regressors.tsv: strategy 'acompcor' has a_comp_cor_* "
        "but no sidecar no_nonsteady_desc-confounds_regressors.json to tell their masks "
        "apart"]
    (tmp_path / "half").mkdir()
    half = _without(tmp_path / "half", V21, "c_comp_cor")
    assert check_columns(half, "acompcor") == [
        "test-v21_desc-confounds_timeseries.tsv: strategy 'acompcor' has WM aCompCor "
        "components but none of the CSF mask"]


def test_missing_motion_cosines_and_fd(tmp_path):
    broken = _without(tmp_path, OLD, ("rot_z", "cosine", "framewise_displacement"))
    head = "test_desc-confounds_regressors.tsv: strategy 'acompcor+24P'"
    assert check_columns(broken, "acompcor+24P") == [
        f"{head} needs fMRIPrep's cosine* drift regressors (the high-pass the aCompCor "
        "components were computed after); none found",
        f"{head} needs the 6 head-motion parameters (trans_x, trans_y, trans_z, rot_x, "
        "rot_y, rot_z); missing: rot_z",
        f"{head} needs framewise displacement (censoring, mean FD) "
        "(framewise_displacement); missing: framewise_displacement"]
    with pytest.raises(InputError) as err:
        _load(broken, "acompcor+24P")
    assert str(err.value).count("\n") == 2


def test_mask_metadata_absent_and_camel_case(tmp_path):
    derived = _as_fmriprep_20(tmp_path)
    meta = json.loads(derived.with_suffix(".json").read_text())
    for entry in meta.values():
        entry.pop("Mask", None)
    derived.with_suffix(".json").write_text(json.dumps(meta))
    assert "JSON gives no WM or CSF Mask" in check_columns(derived, "acompcor")[0]
    old = tmp_path / "sub-01_task-rest_bold_confounds.tsv"
    pd.DataFrame({"WhiteMatter": [1.0, 2.0], "FramewiseDisplacement": [0.0, 0.1]}).to_csv(
        old, sep="\t", index=False)
    assert "CamelCase (fMRIPrep < 1.2, not supported)" in check_columns(old, "24P")[0]


def test_unknown_strategy_and_every_strategy_described():
    with pytest.raises(InputError, match="choose from acompcor, 24P, 36P"):
        check_columns(OLD, "9P")
    for name in STRATEGIES:
        assert "{" not in describe(name, N_COMPCOR)
    assert "the first 5 per mask" in describe("acompcor", 5)


def test_the_regressors_feed_the_one_step_denoising():
    """signal.denoise filters these with the data and regresses them out: the result is
    orthogonal to the (detrended) regressors. The shipped files' 29 volumes are too short
    for the order-5 zero-phase band-pass, so band None here (detrend and regress)."""
    regressors, keep, _ = _load(OLD, "acompcor")
    rng = np.random.default_rng(3)
    design = regressors.to_numpy()
    series = rng.normal(size=(len(regressors), 7)) + design[:, :3] @ rng.normal(size=(3, 7))
    clean = denoise(series, design, 2.0, None, keep=keep)
    assert clean.shape == series.shape and np.isfinite(clean).all()
    detrended = sps.detrend(design, axis=0)
    np.testing.assert_allclose(detrended.T @ clean, 0.0, atol=1e-4)


@pytest.mark.parametrize("path", [OLD, V21], ids=lambda p: p.stem)
def test_denoising_an_fmriprep_run_matches_nilearn_clean_of_its_steady_volumes(tmp_path, path):
    """denoise_fmriprep_core drops the flagged volumes and regresses the strategy's columns
    with data and confounds band-passed alike: the same as nilearn.signal.clean of the
    steady volumes with nilearn's own load_confounds regressors (its sample_mask). The
    files' 30 volumes are too short for the band-pass (test_signal checks it); detrended."""
    image = _arrange(tmp_path, path)
    theirs, sample_mask = nilearn_fmriprep.load_confounds(image, demean=False,
                                                         **NILEARN_CALLS["acompcor"])
    rng = np.random.default_rng(5)
    n_vol = len(theirs)
    data = (rng.normal(size=(3, 4, 2, n_vol)).cumsum(-1) + 100).astype(np.float32)
    mask = np.ones(data.shape[:3], bool)
    out, info, kept = denoise_fmriprep_core(
        data, mask, (2.0, 2.0, 2.0), str(path), 2.0, strategy="acompcor",
        n_compcor=N_COMPCOR, dummy_scans="auto", fd_threshold=None, band=None, fwhm=0.0)
    assert out.shape == data.shape[:3] + (len(sample_mask),)
    assert info["NonSteadyStateVolumes"] == N_DUMMY[path] == n_vol - len(sample_mask)
    assert kept.index.tolist() == sample_mask.tolist()
    ref = nsignal.clean(data[mask][:, sample_mask].T, confounds=theirs.iloc[sample_mask],
                        detrend=True, filter=False, t_r=2.0, standardize=None,
                        standardize_confounds=True)
    # float32 series around 100 (our output is float32): 1e-4 of the range
    np.testing.assert_allclose(out[mask].T, ref, atol=1e-4 * np.abs(ref).max())
