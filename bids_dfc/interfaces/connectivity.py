"""Thin nipype interfaces of the connectivity step: seed maps, warping, extraction, DCC.

Each interface reads files, calls a pure function (:mod:`bids_dfc.seeds`,
:mod:`bids_dfc.dfc`, or the ``*_core`` helpers of this module) and writes files.

Sub-voxel seeds (documented in ``docs/seeds.md``): the template-space partial-volume weight
map of a seed is warped to the BOLD grid with linear interpolation, i.e. sampled at each
BOLD voxel centre, which gives partial-volume weights on the BOLD grid; series are the
weighted mean (weights renormalised to sum 1).  If the warped weights sum to less than
:data:`MIN_WEIGHT` (a seed falling between BOLD voxel centres), the seed falls back to the
single BOLD voxel nearest to its warped centre (located by warping a Gaussian blob centred
on the seed, of width one BOLD voxel, and taking its maximum) and ``fallback`` is set in the
seed table.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import nibabel as nb
import numpy as np
import pandas as pd
from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    InputMultiObject,
    SimpleInterface,
    TraitedSpec,
    isdefined,
    traits,
)

from bids_dfc import seeds as sd
from bids_dfc.errors import InputError
from bids_dfc.interfaces.ants_utils import node_tmpdir

#: warped weights summing to less than this (in BOLD voxels) trigger the nearest-voxel fallback
MIN_WEIGHT = 0.05


def _warp_volume(vol: np.ndarray, src_affine, reference: str, transforms, interp: str, cwd):
    """Warp one 3D array (on ``src_affine``'s grid) onto ``reference`` with antspyx."""
    import ants

    ref = nb.load(reference)
    if not transforms:  # same space: resample only (nothing to do on the same grid)
        if vol.shape == ref.shape[:3] and np.allclose(src_affine, ref.affine, atol=1e-3):
            return vol.astype(np.float64)
        from nilearn.image import resample_img

        out = resample_img(
            nb.Nifti1Image(vol.astype(np.float32), src_affine), target_affine=ref.affine,
            target_shape=ref.shape[:3], interpolation="linear" if interp == "linear"
            else "nearest", force_resample=True, copy_header=True,
        )
        return np.asarray(out.dataobj, dtype=np.float64)
    src = Path(cwd) / "_warp_in.nii.gz"
    nb.save(nb.Nifti1Image(vol.astype(np.float32), src_affine), src)
    with node_tmpdir(cwd):
        warped = ants.apply_transforms(
            fixed=ants.image_read(str(reference)), moving=ants.image_read(str(src)),
            transformlist=list(transforms), interpolator=interp,
            whichtoinvert=[False] * len(transforms),
        )
        return warped.numpy().astype(np.float64)


def _listed(value) -> list:
    return list(value) if isdefined(value) and value else []


def _mask_on(mask_file, ref, cwd) -> np.ndarray:
    """Boolean brain mask on ``ref``'s grid (nearest-neighbour resampled when needed)."""
    img = nb.load(mask_file)
    data = np.asarray(img.dataobj)
    if data.shape[:3] != ref.shape[:3] or not np.allclose(img.affine, ref.affine, atol=1e-3):
        data = _warp_volume(data > 0, img.affine, ref.get_filename(), [], "nearest", cwd)
    return data > 0


def _gaussian_blob(center, sigma_mm, img) -> np.ndarray:
    shape = img.shape[:3]
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1)
    world = ijk @ img.affine[:3, :3].T + img.affine[:3, 3]
    return np.exp(-np.sum((world - np.asarray(center)) ** 2, axis=-1) / (2 * sigma_mm**2))


def warp_weights_core(maps_file, seeds: pd.DataFrame, reference, transforms, mask_file,
                      cwd) -> tuple[nb.Nifti1Image, pd.DataFrame]:
    """Bring template-space seed weight maps onto the BOLD grid and describe each seed.

    Returns the 4D BOLD-grid weight image and a table with, per seed, ``n_voxels``
    (voxels with a weight > 0), ``effective_voxels`` (sum of weights), ``volume_mm3``,
    ``fraction_in_mask`` (weight inside the BOLD brain mask / total), ``fallback`` and the
    weighted centroid on the BOLD grid (``centre_x/y/z``, scanner mm).
    """
    maps = nb.load(maps_file)
    ref = nb.load(reference)
    data = np.asarray(maps.dataobj, dtype=np.float32)
    if data.ndim == 3:
        data = data[..., None]
    mask = _mask_on(mask_file, ref, cwd)
    zooms = np.asarray(ref.header.get_zooms()[:3], dtype=float)
    out = np.zeros(ref.shape[:3] + (data.shape[3],), dtype=np.float32)
    rows = []
    for k, seed in enumerate(seeds.itertuples()):
        w = np.clip(_warp_volume(data[..., k], maps.affine, reference, transforms, "linear",
                                 cwd), 0, None)
        fallback = bool(w.sum() < MIN_WEIGHT)
        if fallback:
            blob = _gaussian_blob((seed.x, seed.y, seed.z), zooms.max(), maps)
            located = _warp_volume(blob, maps.affine, reference, transforms, "linear", cwd)
            if located.max() <= 0:
                raise InputError(
                    f"Seed {seed.name!r} lands outside the BOLD field of view after warping; "
                    "check the registration in the report or the seed coordinates."
                )
            w = np.zeros_like(w)
            w[np.unravel_index(np.argmax(located), located.shape)] = 1.0
        out[..., k] = w
        total = float(w.sum())
        centre = sd.weighted_centroid(w, ref.affine)
        rows.append({
            "name": seed.name, "network": seed.network, "x": seed.x, "y": seed.y,
            "z": seed.z, "radius_mm": seed.radius_mm, "n_voxels": int((w > 0).sum()),
            "effective_voxels": round(total, 4),
            "volume_mm3": round(total * float(np.prod(zooms)), 2),
            "fraction_in_mask": round(float(w[mask].sum() / total), 4),
            "fallback": fallback,
            "centre_x": round(centre[0], 2), "centre_y": round(centre[1], 2),
            "centre_z": round(centre[2], 2),
        })
    img = nb.Nifti1Image(out, ref.affine)
    img.set_data_dtype(np.float32)
    return img, pd.DataFrame(rows)


def mean_fd(confounds_tsv) -> float:
    """Mean framewise displacement (mm) of a confounds table (NaN if the column is absent)."""
    if not confounds_tsv or not isdefined(confounds_tsv):
        return float("nan")
    table = pd.read_csv(confounds_tsv, sep="\t", na_values=["n/a"])
    if "framewise_displacement" not in table:
        return float("nan")
    return float(np.nanmean(table["framewise_displacement"].to_numpy(dtype=float)))


def dfc_core(series: pd.DataFrame, groups: list[tuple[str, list[str]]], *, mode: str,
             fd: float) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """DCC of every pair within each group of columns.

    Parameters
    ----------
    series : pandas.DataFrame (T, columns)
        Time series (seeds, regions, networks).
    groups : list of (level, columns)
        E.g. ``[("network", ["DMN", "DeS"]), ("seed", ["PCC", "mPFC", "PAG", "RVM"])]``;
        pairs are formed within each group, row-major, in this order.
    mode : {"pairwise", "joint"}
        Passed to :func:`bids_dfc.dfc.dcc`.
    fd : float
        Mean framewise displacement, copied into every row.

    Returns
    -------
    summary : pandas.DataFrame
        One row per pair: ``seed_a, seed_b, level, dcc_sd, dcc_mean, pearson_r, a, b,
        converged, n_volumes, mean_fd``.
    dcc_series : pandas.DataFrame (T, pairs)
        Columns ``A__B``.
    info : dict
        Log-likelihoods per group, for the JSON sidecar.
    """
    from bids_dfc.dfc import dcc, dfc_summary

    rows, columns, info = [], {}, {}
    for level, names in groups:
        if len(names) < 2:
            continue
        x = series[names].to_numpy(dtype=float)
        x = (x - x.mean(axis=0)) / x.std(axis=0)  # DCC is scale-free; keep the fit well scaled
        res = dcc(x, mode=mode if len(names) > 2 else "pairwise", names=names)
        summ = dfc_summary(res.R)
        sdv, meanv = summ["sd"], summ["mean"]
        n_pairs = len(res.pairs)
        a = np.broadcast_to(np.asarray(res.a, dtype=float), (n_pairs,))
        b = np.broadcast_to(np.asarray(res.b, dtype=float), (n_pairs,))
        conv = np.broadcast_to(np.asarray(res.converged, dtype=bool), (n_pairs,))
        pearson = np.corrcoef(x, rowvar=False)
        for p, (i, j) in enumerate(res.pairs):
            key = f"{names[i]}{sd.PAIR_SEP}{names[j]}"
            columns[key] = res.R[:, p]
            rows.append({
                "seed_a": names[i], "seed_b": names[j], "level": level,
                "dcc_sd": float(np.asarray(sdv)[p]), "dcc_mean": float(np.asarray(meanv)[p]),
                "pearson_r": float(pearson[i, j]), "a": float(a[p]), "b": float(b[p]),
                "converged": bool(conv[p]), "n_volumes": int(x.shape[0]), "mean_fd": fd,
            })
        info[level] = {"mode": mode if len(names) > 2 else "pairwise",
                       "loglik": np.asarray(res.loglik, dtype=float).round(4).tolist()}
    if not rows:
        raise InputError("Fewer than two series to correlate: give at least two seeds.")
    return pd.DataFrame(rows), pd.DataFrame(columns), info


def relmat(summary: pd.DataFrame, names: list[str], column: str, diag: float) -> pd.DataFrame:
    """Square region x region matrix of one summary column (XCP-D ``relmat`` layout)."""
    pos = {n: k for k, n in enumerate(names)}
    values = np.full((len(names), len(names)), np.nan)
    np.fill_diagonal(values, diag)
    for row in summary.itertuples():
        if row.seed_a in pos and row.seed_b in pos:
            i, j = pos[row.seed_a], pos[row.seed_b]
            values[i, j] = values[j, i] = getattr(row, column)
    mat = pd.DataFrame(values, index=pd.Index(names, name="Node"), columns=names)
    return mat


def _write_tsv(table: pd.DataFrame, name: str, *, index: bool = False) -> str:
    path = Path(os.getcwd()) / name
    table.to_csv(path, sep="\t", index=index, na_rep="n/a", float_format="%.6g")
    return str(path)


class _MakeSeedMapsInputSpec(BaseInterfaceInputSpec):
    seeds_file = File(exists=True, desc="seeds TSV (default: the study's four seeds)")
    reference = File(exists=True, mandatory=True, desc="template-space grid (3D or 4D)")


class _MakeSeedMapsOutputSpec(TraitedSpec):
    out_file = File(exists=True, desc="4D partial-volume weight maps, one volume per seed")
    seeds_tsv = File(exists=True, desc="validated seeds table")


class MakeSeedMaps(SimpleInterface):
    """Validate the seeds table and draw partial-volume spheres on the template grid."""

    input_spec = _MakeSeedMapsInputSpec
    output_spec = _MakeSeedMapsOutputSpec

    def _run_interface(self, runtime):
        path = self.inputs.seeds_file if isdefined(self.inputs.seeds_file) else None
        seeds = sd.read_seeds(path)
        ref = nb.load(self.inputs.reference)
        sd.check_seeds_in_fov(seeds, ref, source=str(path or sd.default_seeds_file()))
        maps = sd.seed_weight_maps(seeds, ref)
        self._results["out_file"] = str(Path(runtime.cwd) / "seed_maps_template.nii.gz")
        nb.save(maps, self._results["out_file"])
        self._results["seeds_tsv"] = _write_tsv(seeds, "seeds.tsv")
        return runtime


class _WarpSeedMapsInputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="template-space 4D seed weight maps")
    seeds_tsv = File(exists=True, mandatory=True, desc="validated seeds table")
    reference = File(exists=True, mandatory=True, desc="target grid (BOLD reference)")
    transforms = InputMultiObject(File(exists=True), value=[], usedefault=True,
                                  desc="template -> target, ants.apply_transforms order")
    mask = File(exists=True, mandatory=True, desc="brain mask on the target grid")


class _WarpSeedMapsOutputSpec(TraitedSpec):
    out_file = File(exists=True, desc="4D seed weights on the target grid")
    seed_info = File(exists=True, desc="per-seed table: voxels, fraction in mask, fallback")


class WarpSeedMaps(SimpleInterface):
    """Warp seed weight maps to the BOLD grid (linear = partial volume) and describe them."""

    input_spec = _WarpSeedMapsInputSpec
    output_spec = _WarpSeedMapsOutputSpec

    def _run_interface(self, runtime):
        seeds = pd.read_csv(self.inputs.seeds_tsv, sep="\t")
        img, info = warp_weights_core(self.inputs.in_file, seeds, self.inputs.reference,
                                      _listed(self.inputs.transforms), self.inputs.mask,
                                      runtime.cwd)
        self._results["out_file"] = str(Path(runtime.cwd) / "seed_weights.nii.gz")
        nb.save(img, self._results["out_file"])
        self._results["seed_info"] = _write_tsv(info, "seed_info.tsv")
        return runtime


class _WarpAtlasInputSpec(BaseInterfaceInputSpec):
    atlas = File(exists=True, mandatory=True, desc="labelled atlas in template space")
    labels = File(exists=True, mandatory=True, desc="labels TSV (index, name[, network])")
    template = File(exists=True, mandatory=True, desc="template image (grid of the atlas)")
    reference = File(exists=True, mandatory=True, desc="target grid")
    transforms = InputMultiObject(File(exists=True), value=[], usedefault=True,
                                  desc="template -> target, ants.apply_transforms order")
    mask = File(exists=True, mandatory=True, desc="brain mask on the target grid")


class _WarpAtlasOutputSpec(TraitedSpec):
    out_file = File(exists=True, desc="atlas labels on the target grid")
    region_info = File(exists=True, desc="per-region table")


class WarpAtlas(SimpleInterface):
    """Check an atlas against its labels and the template, then warp it (generic label)."""

    input_spec = _WarpAtlasInputSpec
    output_spec = _WarpAtlasOutputSpec

    def _run_interface(self, runtime):
        labels = sd.read_atlas_labels(self.inputs.labels)
        atlas, resampled = sd.atlas_to_grid(nb.load(self.inputs.atlas), labels,
                                            nb.load(self.inputs.template))
        transforms = _listed(self.inputs.transforms)
        ref = nb.load(self.inputs.reference)
        lab = np.asarray(atlas.dataobj)
        warped = np.rint(_warp_volume(lab, atlas.affine, self.inputs.reference, transforms,
                                      "genericLabel" if transforms else "nearest",
                                      runtime.cwd)).astype(np.int32)
        mask = _mask_on(self.inputs.mask, ref, runtime.cwd)
        rows = []
        for row in labels.itertuples():
            fallback = not np.any(warped == row.index)
            if fallback:  # region smaller than a BOLD voxel: nearest voxel to its centre
                soft = _warp_volume((lab == row.index).astype(np.float32), atlas.affine,
                                    self.inputs.reference, transforms, "linear", runtime.cwd)
                if soft.max() <= 0:
                    raise InputError(f"Atlas region {row.name!r} lies outside the BOLD field "
                                     "of view after warping.")
                warped[np.unravel_index(np.argmax(soft), soft.shape)] = row.index
            inside = warped == row.index
            rows.append({"index": row.index, "name": row.name,
                         "network": getattr(row, "network", "n/a") or "n/a",
                         "n_voxels": int(inside.sum()),
                         "fraction_in_mask": round(float(mask[inside].mean()), 4),
                         "fallback": fallback, "resampled_to_template": resampled})
        self._results["out_file"] = str(Path(runtime.cwd) / "atlas_bold.nii.gz")
        nb.save(nb.Nifti1Image(warped, ref.affine), self._results["out_file"])
        self._results["region_info"] = _write_tsv(pd.DataFrame(rows), "region_info.tsv")
        return runtime


class _ExtractSeriesInputSpec(BaseInterfaceInputSpec):
    bold_file = File(exists=True, mandatory=True, desc="4D BOLD (denoised)")
    weights = File(exists=True, mandatory=True, desc="4D weights, or 3D atlas labels")
    region_info = File(exists=True, mandatory=True, desc="seed or region table")
    network_weighting = traits.Enum("equal", "voxel", usedefault=True)


class _ExtractSeriesOutputSpec(TraitedSpec):
    timeseries = File(exists=True, desc="TSV: one column per region, then per network")


class ExtractSeries(SimpleInterface):
    """Weighted mean series per seed (or mean per atlas region) plus network means."""

    input_spec = _ExtractSeriesInputSpec
    output_spec = _ExtractSeriesOutputSpec

    def _run_interface(self, runtime):
        info = pd.read_csv(self.inputs.region_info, sep="\t", keep_default_na=False)
        data = np.asanyarray(nb.load(self.inputs.bold_file).dataobj)
        weights = np.asanyarray(nb.load(self.inputs.weights).dataobj)
        names = info["name"].astype(str).tolist()
        if weights.ndim == 3:
            ts = sd.label_mean_series(data, np.rint(weights).astype(int), info["index"])
        else:
            ts = sd.weighted_mean_series(data, weights, names=names)
        series = pd.DataFrame(ts, columns=names)
        nets = dict(zip(names, info["network"].astype(str)))
        if any(v not in ("", "n/a") for v in nets.values()):
            keep = [n for n in names if nets[n] not in ("", "n/a")]
            totals = (dict(zip(names, info["effective_voxels"]))
                      if "effective_voxels" in info else dict(zip(names, info["n_voxels"])))
            series = pd.concat([series, sd.network_series(
                series[keep], nets, weighting=self.inputs.network_weighting,
                seed_weights=totals)], axis=1)
        self._results["timeseries"] = _write_tsv(series, "timeseries.tsv")
        return runtime


class _ComputeDCCInputSpec(BaseInterfaceInputSpec):
    timeseries = File(exists=True, mandatory=True, desc="output of ExtractSeries")
    region_info = File(exists=True, mandatory=True, desc="seed or region table")
    confounds = File(exists=True, desc="confounds TSV (framewise_displacement -> mean_fd)")
    mode = traits.Enum("pairwise", "joint", usedefault=True, desc="DCC over pairs or jointly")
    level = traits.Enum("seed", "region", usedefault=True, desc="name of the region level")
    relmats = traits.Bool(False, usedefault=True, desc="also write relmat TSVs")


class _ComputeDCCOutputSpec(TraitedSpec):
    dfc = File(exists=True, desc="summary, one row per pair (primary network pair first)")
    dcc_series = File(exists=True, desc="DCC series, one column per pair")
    relmat_files = traits.List(File(exists=True), desc="dccsd, pearson, dccmean matrices")
    relmat_stats = traits.List(traits.Str, desc="stat- entity of each relmat")
    meta = traits.Dict(desc="metadata for the JSON sidecar")


class ComputeDCC(SimpleInterface):
    """DCC (Lindquist et al. 2014) of the primary network pair and of every region pair."""

    input_spec = _ComputeDCCInputSpec
    output_spec = _ComputeDCCOutputSpec

    def _run_interface(self, runtime):
        series = pd.read_csv(self.inputs.timeseries, sep="\t")
        info = pd.read_csv(self.inputs.region_info, sep="\t", keep_default_na=False)
        names = info["name"].astype(str).tolist()
        networks = [c for c in series.columns if c not in names]
        pair = sd.primary_pair(networks)
        groups = [("network", list(pair))] if pair else []
        others = [n for n in networks if pair is None or n not in pair]
        if pair and others:  # every further network pair after the primary one
            groups.append(("network", list(pair) + others))
        groups.append((self.inputs.level, names))
        fd = mean_fd(self.inputs.confounds if isdefined(self.inputs.confounds) else None)
        summary, dcc_series, fitinfo = dfc_core(series, groups, mode=self.inputs.mode, fd=fd)
        summary = summary.drop_duplicates(subset=["seed_a", "seed_b"]).reset_index(drop=True)
        dcc_series = dcc_series.loc[:, ~dcc_series.columns.duplicated()]
        self._results["dfc"] = _write_tsv(summary, "dfc.tsv")
        self._results["dcc_series"] = _write_tsv(dcc_series, "dcc.tsv")
        files, stats = [], []
        if self.inputs.relmats:
            for stat, col, diag in (("dccsd", "dcc_sd", 0.0), ("dccmean", "dcc_mean", 1.0),
                                    ("pearsoncorrelation", "pearson_r", 1.0)):
                files.append(_write_tsv(relmat(summary, names, col, diag),
                                        f"relmat_{stat}.tsv", index=True))
                stats.append(stat)
        self._results["relmat_files"] = files
        self._results["relmat_stats"] = stats
        self._results["meta"] = {
            "PrimaryPair": list(pair) if pair else None,
            "DCCMode": self.inputs.mode,
            "Fits": json.loads(json.dumps(fitinfo)),
            "NumberOfVolumes": len(series),
            "MeanFramewiseDisplacement": None if np.isnan(fd) else round(fd, 4),
        }
        return runtime
