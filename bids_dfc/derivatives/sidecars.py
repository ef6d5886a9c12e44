"""The static part of the connectivity outputs' JSON sidecars (nipype-free): what each
file and each of its columns holds. The workflows add the run's own fit information."""

from __future__ import annotations

#: the dFC tables (seg-seeds_dfc.tsv, the atlas's edges.tsv)
DFC_META = {
    "Description": "Dynamic functional connectivity, one row per pair; the first row is the "
    "primary network pair (DMN, DeS).",
    "Method": "DCC(1,1) after GARCH(1,1) per series (Engle 2002; Lindquist et al. 2014).",
    "dcc_sd": "standard deviation over time of the DCC series (the dFC summary)",
    "dcc_sd_ci_low": "2.5th percentile of the dcc_sd of parametric-bootstrap replicates "
                     "(simulated from the pair's fitted DCC-GARCH model, refitted): lower "
                     "end of its 95% interval (n/a: --dfc-bootstrap off, a joint fit, an "
                     "atlas pair)",
    "dcc_sd_ci_high": "97.5th percentile of the bootstrap dcc_sd: upper end of its 95% "
                      "interval",
    "dcc_sd_boot_n": "bootstrap replicates in the interval (those whose refits converged)",
    "dcc_mean": "mean over time of the DCC series",
    "pearson_r": "static Pearson correlation of the two series",
    "a": "DCC news parameter", "b": "DCC decay parameter",
    "converged": "whether the optimiser met its convergence criterion",
    "n_volumes": "volumes used (after dropping non-steady-state volumes)",
    "mean_fd": "mean framewise displacement (mm, Power et al. 2012)",
}


#: the columns of the seeds' look-up table (seg-seeds_dseg.tsv)
SEED_TABLE = {
    "Description": "Look-up table of the seeds: row index k describes volume k of the "
                   "matching seg-seeds_probseg.nii.gz.",
    "index": "volume of the seed in the probseg image (from 1)",
    "name": "seed name", "network": "network the seed belongs to (DMN, DeS)",
    "x": "seed centre, template x (mm)", "y": "seed centre, template y (mm)",
    "z": "seed centre, template z (mm)", "radius_mm": "seed sphere radius (mm)",
    "n_voxels": "BOLD voxels with a weight above 0",
    "effective_voxels": "sum of the weights (partial-volume voxel count)",
    "volume_mm3": "effective_voxels times the BOLD voxel volume (mm^3)",
    "fraction_in_mask": "share of the weight inside the BOLD brain mask",
    "fallback": "the warped seed had no weight; its nearest BOLD voxel was used",
    "centre_x": "weighted centroid on the BOLD grid, scanner x (mm)",
    "centre_y": "weighted centroid on the BOLD grid, scanner y (mm)",
    "centre_z": "weighted centroid on the BOLD grid, scanner z (mm)",
}

#: the atlas image's sidecar, shared with its look-up table (same name, .tsv)
ATLAS_META = {
    "Description": "Atlas labels on the BOLD grid (generic-label interpolation); the "
                   "look-up table of the same name (.tsv) lists the regions.",
    "index": "label value in the image", "name": "region name",
    "network": "network of the region (n/a when the labels give none)",
    "n_voxels": "BOLD voxels with this label",
    "fraction_in_mask": "share of the region's voxels inside the BOLD brain mask",
    "fallback": "the region was smaller than a BOLD voxel; its nearest voxel was used",
    "resampled_to_template": "the atlas was first resampled to the template grid",
}


#: what each relmat's stat- entity measures (BEP017's RelationshipMeasure)
RELMAT_MEASURE = {"dccsd": "standard deviation over time of the DCC series",
                   "dccmean": "mean over time of the DCC series",
                   "pearsoncorrelation": "Pearson correlation"}
