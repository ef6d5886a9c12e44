"""Truth test of the participant level: pipeline DMN-DeS dFC vs the planted truth and an oracle.

On the demo dataset (default 12 subjects), for every subject:

* ``true_dfc``: the planted dFC (demo truth): SD of the DCC series of the planted,
  noise-free DMN and DeS signals (what a perfect preprocessing would give);
* ``rho_sd``: SD of the planted correlation time course ``rho_t`` (for reference: DCC on
  150 band-limited volumes follows it only loosely);
* ``oracle_dfc``: the pipeline with everything it *estimates* replaced by the truth and
  everything it *computes* kept: the raw run motion-corrected with the **true** head motion,
  the pipeline's default confounds (5 aCompCor components; WM/CSF masks made by the
  pipeline's own rule from the **true** T1w tissue maps and the **true** BOLD-T1w
  transform), the pipeline's own denoising (detrend, 0.01-0.1 Hz band-pass of data and
  confounds, regression) and 4 mm smoothing inside the **true** brain mask, seed series over
  the **true** partial-volume seed maps, networks = mean of their seeds, the same DCC. So
  pipeline vs oracle measures what the pipeline loses through its estimates (head motion,
  BOLD-T1w and T1w-template registration, brain mask, tissue segmentation);
* ``minimal_oracle_dfc`` (diagnostic): true seed maps on the raw run, no motion correction,
  no smoothing, no motion regressors, aCompCor of the voxels with true WM or CSF fraction
  >= 0.9 (``nilearn.signal.clean``): how far the DCC SD moves with processing *choices*;
* ``pipeline_dfc``: ``dcc_sd`` of the primary row of the pipeline's ``*_seg-seeds_dfc.tsv``;
* ``truemaps_on_pipeline_dfc`` (diagnostic): the true seed maps applied to the pipeline's
  denoised BOLD, which splits pipeline-oracle differences into seed placement and
  preprocessing;
* seed placement: distance between the pipeline's and the true seed centres (mm) and the
  overlap of their normalised weights.

It prints and writes (``validation/results/truth_dfc.tsv`` per subject and
``validation/results/truth_dfc_summary.tsv``) Spearman(pipeline, truth),
Pearson(pipeline, oracle) and, for reference, Spearman(oracle, truth), the same figures
for the minimal oracle, Spearman(pipeline, rho_sd) and the median absolute error of the
static DMN-DeS correlation (raw data, pipeline, oracle vs the planted one). With
``--group`` it also runs the group level on the pipeline's outputs (settings of
``demo/group.toml``) and compares its tests with the same tests on the true dFC
(``validation/results/truth_group.tsv``): are the planted group effects recovered?

Usage::

    python validation/truth_dfc.py --work /tmp/truth --run-pipeline   # all of it
    python validation/truth_dfc.py --work /tmp/truth --oracle-only     # no pipeline
    python validation/truth_dfc.py --work /tmp/truth --derivatives D   # pipeline already run
    python validation/truth_dfc.py --work W --bids B --derivatives D --group  # e.g. make demo
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nb
import numpy as np
import pandas as pd
from scipy import stats

from bids_dfc.config import DEFAULT_CONFOUNDS, WorkflowOptions

#: the pipeline's own defaults (config.py), which the oracle shares
DEFAULTS = WorkflowOptions()

RESULTS = Path(__file__).resolve().parent / "results"
N_COMPCOR = 5
PURE = 0.9  # tissue fraction for the minimal oracle's WM/CSF masks


def _ensure_dataset(work: Path, n_subjects: int, seed: int) -> tuple[Path, Path]:
    from bids_dfc.demo import make_demo_dataset

    bids, truth = work / "demo", work / "demo_truth"
    if not (truth / "participants_truth.tsv").exists():
        t0 = time.time()
        make_demo_dataset(bids, n_subjects=n_subjects, seed=seed, n_jobs=2, overwrite=True)
        print(f"demo dataset: {n_subjects} subjects in {time.time() - t0:.0f} s")
    return bids, truth


def _acompcor(data: np.ndarray, noise_mask: np.ndarray, tr: float) -> np.ndarray:
    from nilearn import signal

    ts = data[noise_mask].T.astype(np.float64)  # (T, V)
    ts = signal.clean(ts, detrend=True, standardize="zscore_sample", low_pass=0.1,
                      high_pass=0.01, t_r=tr)
    u, _, _ = np.linalg.svd(ts, full_matrices=False)
    return u[:, :N_COMPCOR]


def _undo_motion(data: np.ndarray, affine: np.ndarray, matrices: np.ndarray) -> np.ndarray:
    """Every volume resampled onto the reference frame with its **true** head motion
    (cubic B-spline, clipped at 0, as the pipeline's own motion correction does)."""
    from scipy import ndimage as ndi

    inv = np.linalg.inv(affine)
    out = np.empty(data.shape, np.float32)
    for t in range(data.shape[-1]):
        to_vol = inv @ matrices[t] @ affine  # reference voxel -> voxel of volume t
        vol = ndi.affine_transform(data[..., t], to_vol[:3, :3], to_vol[:3, 3], order=3,
                                   mode="constant", cval=0.0)
        out[..., t] = np.maximum(vol, 0.0)
    return out


def true_noise_masks(truth: dict, shape, bold_affine, tmpdir: Path) -> dict:
    """The oracle's brain, WM and CSF masks on the BOLD grid: the pipeline's own rule
    (:func:`bids_dfc.preproc.boldreg.project_anat`: probability > 0.9, eroded, nothing within 2 mm
    of grey matter, resampled onto the BOLD grid) applied to the **true** T1w brain mask
    and tissue fractions, carried by the **true** BOLD-T1w transform."""
    from bids_dfc.preproc.boldreg import project_anat
    from bids_dfc.preproc.motion import write_ants_affine

    files = truth["files"]
    mask_img = nb.load(files["t1w_brain_mask"])
    tpms = [np.asarray(nb.load(files[f"t1w_{k}"]).dataobj, np.float32)
            for k in ("gm", "wm", "csf")]
    # fixed (BOLD reference) world -> moving (T1w) world, the ANTs point-map convention
    xfm = write_ants_affine(np.linalg.inv(truth["t1w_to_bold"]), tmpdir / "bold2t1w.mat")
    return project_anat(np.asarray(mask_img.dataobj, np.float32), tpms, mask_img.affine,
                        [xfm], shape, bold_affine)


def oracle_dfc(truth_dir: Path, subject: str, bids_dir: Path,
               groups=DEFAULT_CONFOUNDS) -> dict:
    """The oracle's DMN-DeS dFC for one subject (single session/run): the pipeline's own
    processing with everything the pipeline estimates replaced by the truth.

    The raw run (non-steady-state volumes dropped) is motion-corrected with the **true**
    head motion; the confounds are the pipeline's (:func:`confounds_core`, with the true
    motion parameters and the 5 aCompCor components of WM/CSF masks made by the pipeline's
    rule from the **true** tissue maps, :func:`true_noise_masks`) and the default set of
    them is regressed (``groups``: aCompCor alone, as the pipeline's default); the
    denoising, band-pass and 4 mm smoothing are the pipeline's (:func:`denoise_core`,
    inside the **true** brain mask); the seed series are weighted means over the **true**
    partial-volume seed maps; the DCC is the pipeline's.
    """
    from bids_dfc.connectivity.seeds import read_seeds
    from bids_dfc.connectivity.series import weighted_mean_series
    from bids_dfc.demo import load_truth, motion_matrices
    from bids_dfc.interfaces.confounds import confounds_core
    from bids_dfc.interfaces.denoise import denoise_core

    truth = load_truth(truth_dir, subject)
    bold_file = next((bids_dir / f"sub-{subject}").glob("**/func/*_bold.nii.gz"))
    img = nb.load(bold_file)
    tr = float(img.header.get_zooms()[3])
    skip = truth["n_dummies"]
    data = np.asarray(img.dataobj, dtype=np.float32)[..., skip:]
    matrices = motion_matrices(truth)[skip:]
    if len(matrices) != data.shape[-1]:
        raise RuntimeError(f"sub-{subject}: {len(matrices)} true motion matrices for "
                           f"{data.shape[-1]} volumes")
    corrected = _undo_motion(data, img.affine, matrices)
    files = truth["files"]
    with tempfile.TemporaryDirectory() as tmp:
        masks = true_noise_masks(truth, data.shape[:3], img.affine, Path(tmp))
    table, _ = confounds_core(corrected, img.affine, masks["brain"], masks["wm"],
                              masks["csf"], matrices, tr, n_components=N_COMPCOR,
                              high_pass=DEFAULTS.band_pass[0])
    zooms = np.sqrt((img.affine[:3, :3] ** 2).sum(0))
    clean, _ = denoise_core(corrected, masks["brain"], zooms, table, tr, groups=groups,
                            band=DEFAULTS.band_pass, fwhm=DEFAULTS.smoothing_fwhm)
    names = list(read_seeds()["name"])
    weights = np.stack([np.asarray(nb.load(files[f"seed-{n}"]).dataobj, float)
                        for n in names], axis=-1)
    series = pd.DataFrame(weighted_mean_series(clean, weights, names=names), columns=names)
    dfc_value, r = _network_dcc_sd(series, with_r=True)
    return {"oracle_dfc": dfc_value, "oracle_r": r,
            "n_noise_voxels": int((masks["wm"] | masks["csf"]).sum()),
            **minimal_oracle(truth, data, tr)}


def minimal_oracle(truth: dict, data: np.ndarray, tr: float) -> dict:
    """Diagnostic: a second oracle that shares none of the pipeline's processing choices.

    True seed maps on the raw run (no motion correction, no smoothing), nuisance
    regression on 5 principal components of the voxels with true WM or CSF fraction >=
    ``PURE`` (``nilearn.signal.clean``: detrend and 0.01-0.1 Hz band-pass), no motion
    regressors. It shows how much of the DCC SD depends on preprocessing choices that are
    not estimation errors (motion handling, smoothing, confound set)."""
    from nilearn import signal

    from bids_dfc.connectivity.seeds import read_seeds

    files = truth["files"]
    tissue = {k: np.asarray(nb.load(files[k]).dataobj) for k in ("wm", "csf")}
    noise = (tissue["wm"] >= PURE) | (tissue["csf"] >= PURE)
    confounds = _acompcor(data, noise, tr)
    seeds = read_seeds()
    series = {}
    for row in seeds.itertuples():
        w = np.asarray(nb.load(files[f"seed-{row.name}"]).dataobj, dtype=np.float64)
        series[row.name] = data[w > 0].T @ w[w > 0] / w[w > 0].sum()
    raw = pd.DataFrame(series)
    clean = signal.clean(raw.to_numpy(), confounds=confounds, detrend=True,
                         standardize=None, low_pass=0.1, high_pass=0.01, t_r=tr)
    minimal, _ = _network_dcc_sd(pd.DataFrame(clean, columns=raw.columns), with_r=True)
    # static DMN-DeS correlation: planted and raw (true seeds, no cleaning at all)
    planted = truth["signals"][["dmn", "des"]].to_numpy()[truth["n_dummies"]:]
    raw_nets = [raw[list(seeds.loc[seeds.network == net, "name"])].mean(axis=1)
                for net in ("DMN", "DeS")]
    return {"minimal_oracle_dfc": minimal, "true_dfc": truth["true_dfc"],
            "rho_sd": float(truth["run_info"]["rho_sd"]),
            "true_r": float(np.corrcoef(planted.T)[0, 1]),
            "raw_r": float(np.corrcoef(raw_nets[0], raw_nets[1])[0, 1])}


def seed_placement(derivatives: Path, truth_dir: Path, subject: str) -> dict:
    """Distance (mm) between the pipeline's and the true seed centres on the BOLD grid, and
    the overlap of the normalised weights (sum of minima; 1 = identical)."""
    from bids_dfc.connectivity.weights import weighted_centroid
    from bids_dfc.demo import load_truth

    func = derivatives / f"sub-{subject}"
    info_f = sorted(func.glob("**/func/*_seg-seeds_dseg.tsv"))
    maps_f = sorted(func.glob("**/func/*_seg-seeds_probseg.nii.gz"))
    if not info_f or not maps_f:
        return {}
    truth = load_truth(truth_dir, subject)
    info = pd.read_csv(info_f[0], sep="\t")
    img = nb.load(maps_f[0])
    if not np.allclose(img.affine, truth["bold_affine"], atol=1e-3):
        return {}  # not the raw BOLD grid: centres not comparable voxel-wise
    weights = np.asarray(img.dataobj, dtype=np.float64)
    out = {}
    for k, row in info.iterrows():
        true_w = np.asarray(nb.load(truth["files"][f"seed-{row['name']}"]).dataobj, float)
        centre = row[["centre_x", "centre_y", "centre_z"]].to_numpy(dtype=float)
        out[f"dist_mm_{row['name']}"] = float(np.linalg.norm(
            centre - weighted_centroid(true_w, truth["bold_affine"])))
        mine = weights[..., k]
        out[f"overlap_{row['name']}"] = float(np.minimum(mine / mine.sum(),
                                                         true_w / true_w.sum()).sum())
        out[f"fallback_{row['name']}"] = bool(row["fallback"])
    return out


def _network_dcc_sd(series: pd.DataFrame, with_r: bool = False):
    """SD of the DMN-DeS DCC series of seed ``series`` (networks = mean of their seeds),
    and with ``with_r`` also the static correlation of the two network series."""
    from bids_dfc.connectivity.seeds import read_seeds
    from bids_dfc.dfc import dcc, dfc_summary

    seeds = read_seeds()
    x = np.column_stack([series[list(seeds.loc[seeds.network == net, "name"])].mean(axis=1)
                         for net in ("DMN", "DeS")])
    sd = float(dfc_summary(dcc((x - x.mean(0)) / x.std(0)).R)["sd"][0])
    return (sd, float(np.corrcoef(x.T)[0, 1])) if with_r else sd


def truemaps_on_pipeline(derivatives: Path, truth_dir: Path, subject: str) -> dict:
    """Diagnostic: the true seed maps applied to the pipeline's own denoised BOLD.

    Separates the two sources of pipeline-oracle differences: seed placement (pipeline vs
    this) and preprocessing/denoising (this vs the oracle)."""
    from bids_dfc.connectivity.seeds import read_seeds
    from bids_dfc.connectivity.series import weighted_mean_series
    from bids_dfc.demo import load_truth

    files = sorted((derivatives / f"sub-{subject}").glob("**/func/*_desc-denoised_bold.nii.gz"))
    files = [f for f in files if "space-" not in f.name]
    if not files:
        return {}
    truth = load_truth(truth_dir, subject)
    img = nb.load(files[0])
    if not np.allclose(img.affine, truth["bold_affine"], atol=1e-3):
        return {}
    names = list(read_seeds()["name"])
    weights = np.stack([np.asarray(nb.load(truth["files"][f"seed-{n}"]).dataobj, float)
                        for n in names], axis=-1)
    ts = weighted_mean_series(np.asarray(img.dataobj), weights, names=names)
    return {"truemaps_on_pipeline_dfc": _network_dcc_sd(pd.DataFrame(ts, columns=names))}


def pipeline_dfc(derivatives: Path, subject: str) -> dict:
    files = sorted((derivatives / f"sub-{subject}").glob("**/func/*_seg-seeds_dfc.tsv"))
    if not files:
        return {"pipeline_dfc": np.nan, "pipeline_converged": np.nan, "mean_fd": np.nan,
                "pipeline_r": np.nan}
    row = pd.read_csv(files[0], sep="\t").iloc[0]
    if (row["seed_a"], row["seed_b"]) != ("DMN", "DeS"):
        raise RuntimeError(f"{files[0]}: first row is not DMN-DeS")
    return {"pipeline_dfc": float(row["dcc_sd"]), "pipeline_converged": bool(row["converged"]),
            "mean_fd": float(row["mean_fd"]), "pipeline_r": float(row["pearson_r"])}


def run_pipeline(bids: Path, derivatives: Path, work: Path, nprocs: int, confounds) -> float:
    cmd = [sys.executable, "-m", "bids_dfc.cli.run", str(bids), str(derivatives),
           "participant", "-w", str(work / "work"), "--nprocs", str(nprocs),
           "--skip-bids-validation", "--confounds", *confounds]
    print("running:", " ".join(cmd), flush=True)
    t0 = time.time()
    proc = subprocess.run(cmd, check=False)
    if proc.returncode != 0:
        print(f"participant level exited with {proc.returncode}", flush=True)
    return time.time() - t0


def _group_level(bids: Path, derivatives: Path) -> pd.DataFrame:
    """Run the group level (demo settings) on ``derivatives``; return its stats table."""
    config = Path(__file__).resolve().parents[1] / "demo" / "group.toml"
    cmd = [sys.executable, "-m", "bids_dfc.cli.run", str(bids), str(derivatives), "group",
           "--config-file", str(config)]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return pd.read_csv(derivatives / "group" / "stats.tsv", sep="\t")


def group_recovery(bids: Path, derivatives: Path, work: Path, table: pd.DataFrame):
    """The group tests on the pipeline's dFC next to the same tests on the true dFC.

    The truth side is the same group-level code run on a copy of the participants'
    ``*_seg-seeds_dfc.tsv`` files whose primary (DMN-DeS) ``dcc_sd`` is replaced by the
    subject's planted dFC, so both columns come from identical statistics."""
    import shutil

    truth_deriv = work / "truth_derivatives"
    shutil.rmtree(truth_deriv, ignore_errors=True)
    true = table.set_index("participant_id")["true_dfc"]
    for src in derivatives.glob("sub-*/**/*_seg-seeds_dfc.*"):
        dst = truth_deriv / src.relative_to(derivatives)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)
        if src.suffix == ".tsv":
            dfc = pd.read_csv(dst, sep="\t")
            primary = (dfc["seed_a"] == "DMN") & (dfc["seed_b"] == "DeS")
            dfc.loc[primary, "dcc_sd"] = true[src.name.split("_")[0]]
            dfc.to_csv(dst, sep="\t", index=False, na_rep="n/a")
    shutil.copy2(derivatives / "dataset_description.json", truth_deriv)
    keys = ["test", "variable", "contrast"]
    pipe = _group_level(bids, derivatives)
    truth = _group_level(bids, truth_deriv)
    both = pipe.merge(truth, on=keys, suffixes=("_pipeline", "_truth"))
    cols = keys + [f"{c}_{side}" for c in ("statistic", "p", "ci_low", "ci_high")
                   for side in ("pipeline", "truth")] + ["n_pipeline"]
    return both[cols]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, required=True, help="scratch folder")
    parser.add_argument("--n-subjects", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--nprocs", type=int, default=2)
    parser.add_argument("--derivatives", type=Path, help="participant outputs already made")
    parser.add_argument("--run-pipeline", action="store_true")
    parser.add_argument("--oracle-only", action="store_true")
    parser.add_argument("--bids", type=Path, help="an existing demo dataset (truth in "
                        "<BIDS>_truth), e.g. make demo's demo_out/bids")
    parser.add_argument("--group", action="store_true", help="also compare the group level")
    parser.add_argument("--confounds", nargs="+", default=list(DEFAULT_CONFOUNDS),
                        help="confound groups of the pipeline run (and so of the oracle)")
    args = parser.parse_args(argv)
    work = args.work.absolute()
    work.mkdir(parents=True, exist_ok=True)
    if args.bids:
        bids = args.bids.absolute()
        truth_dir = Path(str(bids) + "_truth")
    else:
        bids, truth_dir = _ensure_dataset(work, args.n_subjects, args.seed)
    derivatives = (args.derivatives or work / "derivatives").absolute()
    runtime = np.nan
    if args.run_pipeline and not args.oracle_only:
        runtime = run_pipeline(bids, derivatives, work, args.nprocs, args.confounds)
    table = pd.read_csv(truth_dir / "participants_truth.tsv", sep="\t")
    # the oracle does not depend on the pipeline: computed once per dataset, then reused
    cache_file = work / f"oracle_cache_v2_{'-'.join(args.confounds)}.tsv"
    cache = (pd.read_csv(cache_file, sep="\t").set_index("participant_id")
             if cache_file.exists() else pd.DataFrame())
    rows = []
    for pid in table["participant_id"]:
        sub = pid.removeprefix("sub-")
        if pid in cache.index:
            oracle = cache.loc[pid].to_dict()
        else:
            oracle = oracle_dfc(truth_dir, sub, bids, groups=tuple(args.confounds))
            cache = pd.concat([cache, pd.DataFrame([oracle], index=pd.Index([pid],
                                                                          name="participant_id"))])
            cache.to_csv(cache_file, sep="\t")
        row = {"participant_id": pid, **oracle}
        if not args.oracle_only:
            row.update(pipeline_dfc(derivatives, sub))
            row.update(seed_placement(derivatives, truth_dir, sub))
            row.update(truemaps_on_pipeline(derivatives, truth_dir, sub))
        rows.append(row)
        print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()},
              flush=True)
    res = pd.DataFrame(rows)
    RESULTS.mkdir(parents=True, exist_ok=True)
    res.to_csv(RESULTS / "truth_dfc.tsv", sep="\t", index=False, na_rep="n/a",
               float_format="%.6g")
    summary = []
    rho, p = stats.spearmanr(res["oracle_dfc"], res["true_dfc"])
    summary.append(("spearman_oracle_truth", rho, p, len(res)))
    rho, p = stats.spearmanr(res["minimal_oracle_dfc"], res["true_dfc"])
    summary.append(("spearman_minimaloracle_truth", rho, p, len(res)))
    r, p = stats.pearsonr(res["oracle_dfc"], res["minimal_oracle_dfc"])
    summary.append(("pearson_oracle_minimaloracle", r, p, len(res)))
    if not args.oracle_only:
        ok = res.dropna(subset=["pipeline_dfc"])
        if len(ok) >= 3:
            rho, p = stats.spearmanr(ok["pipeline_dfc"], ok["true_dfc"])
            summary.append(("spearman_pipeline_truth", rho, p, len(ok)))
            rho, p = stats.spearmanr(ok["pipeline_dfc"], ok["rho_sd"])
            summary.append(("spearman_pipeline_rhosd", rho, p, len(ok)))
            r, p = stats.pearsonr(ok["pipeline_dfc"], ok["oracle_dfc"])
            summary.append(("pearson_pipeline_oracle", r, p, len(ok)))
            r, p = stats.pearsonr(ok["pipeline_dfc"], ok["minimal_oracle_dfc"])
            summary.append(("pearson_pipeline_minimaloracle", r, p, len(ok)))
        if "truemaps_on_pipeline_dfc" in ok and len(ok) >= 3:
            r, p = stats.pearsonr(ok["pipeline_dfc"], ok["truemaps_on_pipeline_dfc"])
            summary.append(("pearson_pipeline_truemapsonpipeline", r, p, len(ok)))
            r, p = stats.pearsonr(ok["truemaps_on_pipeline_dfc"], ok["oracle_dfc"])
            summary.append(("pearson_truemapsonpipeline_oracle", r, p, len(ok)))
        # static correlation: how far raw data, pipeline and oracle are from the planted one
        for name in ("raw_r", "pipeline_r", "oracle_r"):
            err = (ok[name] - ok["true_r"]).abs()
            summary.append((f"median_abs_error_{name}", err.median(), np.nan, len(ok)))
        summary.append(("subjects_with_pipeline_output", len(ok), np.nan, len(res)))
        for col in [c for c in res.columns if c.startswith(("dist_mm_", "overlap_"))]:
            vals = res[col].dropna()
            summary.append((f"median_{col}", vals.median(), np.nan, len(vals)))
            summary.append((f"max_{col}" if col.startswith("dist") else f"min_{col}",
                            vals.max() if col.startswith("dist") else vals.min(), np.nan,
                            len(vals)))
        summary.append(("pipeline_runtime_s", runtime, np.nan, len(res)))
    out = pd.DataFrame(summary, columns=["metric", "value", "p", "n"])
    out.to_csv(RESULTS / "truth_dfc_summary.tsv", sep="\t", index=False, na_rep="n/a",
               float_format="%.6g")
    print(out.to_string(index=False))
    if args.group and not args.oracle_only:
        grp = group_recovery(bids, derivatives, work, table)
        grp.to_csv(RESULTS / "truth_group.tsv", sep="\t", index=False, na_rep="n/a",
                   float_format="%.6g")
        print(grp.to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
