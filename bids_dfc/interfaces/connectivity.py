"""Thin nipype interfaces of the connectivity step: seed maps, warping, extraction, DCC.

Each interface reads files, calls a pure function (:mod:`bids_dfc.connectivity.seeds`,
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

from bids_dfc.connectivity import seeds as sd
from bids_dfc.connectivity import series as ss
from bids_dfc.connectivity import weights as sw
from bids_dfc.connectivity.tables import dfc_core, mean_fd, relmat
from bids_dfc.connectivity.weights import (
    _mask_on,
    _warp_volume,
    warp_weights_core,
)
from bids_dfc.errors import InputError


def _listed(value) -> list:
    return list(value) if isdefined(value) and value else []


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
        maps = sw.seed_weight_maps(seeds, ref)
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
        atlas, resampled = sw.atlas_to_grid(nb.load(self.inputs.atlas), labels,
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
    network_weighting = traits.Enum("equal", "voxel", mandatory=True)


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
            ts = ss.label_mean_series(data, np.rint(weights).astype(int), info["index"])
        else:
            ts = ss.weighted_mean_series(data, weights, names=names)
        series = pd.DataFrame(ts, columns=names)
        nets = dict(zip(names, info["network"].astype(str)))
        if any(v not in ("", "n/a") for v in nets.values()):
            keep = [n for n in names if nets[n] not in ("", "n/a")]
            totals = (dict(zip(names, info["effective_voxels"]))
                      if "effective_voxels" in info else dict(zip(names, info["n_voxels"])))
            series = pd.concat([series, ss.network_series(
                series[keep], nets, weighting=self.inputs.network_weighting,
                seed_weights=totals)], axis=1)
        self._results["timeseries"] = _write_tsv(series, "timeseries.tsv")
        return runtime


def _bootstrap_meta(n_boot: int, random_seed: int) -> dict | None:
    """The sidecar's account of the SD intervals (None when the bootstrap is off)."""
    if not n_boot:
        return None
    return {"Replicates": int(n_boot), "RandomSeed": int(random_seed), "Level": 0.95,
            "Interval": "percentile", "Method": "parametric bootstrap: series simulated "
            "from each pair's fitted DCC-GARCH(1,1) model, refitted by the same estimator"}


class _ComputeDCCInputSpec(BaseInterfaceInputSpec):
    timeseries = File(exists=True, mandatory=True, desc="output of ExtractSeries")
    region_info = File(exists=True, mandatory=True, desc="seed or region table")
    confounds = File(exists=True, desc="confounds TSV (framewise_displacement -> mean_fd)")
    mode = traits.Enum("pairwise", "joint", mandatory=True, desc="DCC over pairs or jointly")
    level = traits.Enum("seed", "region", usedefault=True, desc="name of the region level")
    relmats = traits.Bool(False, usedefault=True, desc="also write relmat TSVs")
    n_boot = traits.Int(mandatory=True, desc="bootstrap replicates of each SD (0: off)")
    random_seed = traits.Int(mandatory=True, desc="--random-seed (>= 0)")


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
        summary, dcc_series, fitinfo = dfc_core(series, groups, mode=self.inputs.mode, fd=fd,
                                                n_boot=self.inputs.n_boot,
                                                random_seed=self.inputs.random_seed)
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
            "DCCSDBootstrap": _bootstrap_meta(self.inputs.n_boot, self.inputs.random_seed),
        }
        return runtime
