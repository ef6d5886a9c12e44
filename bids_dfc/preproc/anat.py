"""Anatomical maths with antspyx (nipype-free): N4, template registration + brain mask, tissues.

Brain extraction reuses the normalisation: the N4-corrected head is registered to the
template brain (affine on the head below a 180 mm field of view, then affine + SyN on the
roughly masked head), the template brain mask is brought back through the inverse transforms
and refined (holes filled, largest component, cut to the head's foreground).  Tissue
probabilities come from Atropos initialised with the template's GM/WM/CSF maps warped to the
subject (or from intensity k-means when the template has no tissue maps).  antspyx objects
never leave a function.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bids_dfc.errors import BidsDfcError, RegistrationError
from bids_dfc.io import move_into_place
from bids_dfc.preproc.ants_utils import (
    ants_seed,
    head_mask,
    read_finite_image,
)

if TYPE_CHECKING:
    import ants

PathLike = str | os.PathLike

#: Field of view kept above the top of the head for the first (affine) registration, mm.
FOV_MM = 180.0


#: Registration quality limits (see ``check_registration``).
MIN_CORRELATION = 0.5


MIN_MASK_IN_HEAD = 0.90


BRAIN_VOLUME_ML = (500.0, 3000.0)


#: Finest grid on which Atropos runs (mm); finer T1w images are segmented on this grid.
SEG_MIN_SPACING_MM = 1.0


def n4_core(in_file: PathLike, out_file: PathLike, *, sloppy: bool = False,
            sanitise: bool = False) -> str:
    """N4 bias-field correction of a T1w (intensities clipped to [0, 99.9th percentile]).

    Parameters
    ----------
    in_file, out_file : path
        Raw T1w and where to write the corrected image (float32).
    sloppy : bool
        Fewer iterations (tests and demo only).
    sanitise : bool
        Set NaN/inf voxels to 0 with a warning instead of raising.

    Returns
    -------
    str
        ``out_file``.
    """
    import ants

    img = read_finite_image(in_file, sanitise=sanitise)
    data = img.numpy()
    hi = float(np.percentile(data[data > 0], 99.9)) if (data > 0).any() else 0.0
    if hi <= 0:
        raise BidsDfcError(f"{in_file} has no positive voxel: is it a T1w image?")
    img = img.new_image_like(np.clip(data, 0, hi).astype("float32"))
    mask = head_mask(img)
    shrink = int(max(1, round(4.0 / min(img.spacing))))
    iters = [20, 20, 10] if sloppy else [50, 50, 30, 20]
    out = ants.n4_bias_field_correction(
        img, mask=mask, shrink_factor=shrink, convergence={"iters": iters, "tol": 1e-7},
        spline_param=200 if sloppy else 120,
    )
    out = out * (1000.0 / float(np.percentile(out.numpy()[mask.numpy() > 0], 99)))
    ants.image_write(out, str(out_file))
    return str(out_file)


def _params(sloppy: bool) -> dict:
    """Registration schedules.  ``sloppy`` is for tests and the demo only."""
    if sloppy:
        return {"aff_iterations": (200, 100, 0), "aff_shrink_factors": (8, 4, 2),
                "aff_smoothing_sigmas": (4, 2, 1), "reg_iterations": (30, 15, 0)}
    return {"aff_iterations": (1000, 500, 250, 0), "aff_shrink_factors": (8, 4, 2, 1),
            "aff_smoothing_sigmas": (4, 2, 1, 0), "reg_iterations": (70, 50, 20)}


def register_core(t1w_file: PathLike, template_t1w: PathLike, template_mask: PathLike,
                  out_dir: PathLike, *, sloppy: bool = False, random_seed: int) -> dict:
    """Register an N4-corrected T1w head to a template brain; derive the brain mask.

    1. Affine registration of the head (neck cut at ``FOV_MM`` below the top of the head)
       to the template brain, metric restricted to the template mask dilated by 8 mm.
    2. The dilated template mask brought back through the inverse affine masks the head.
    3. Affine + SyN (Mattes MI) of that masked head to the template brain, initialised with
       step 1.
    4. Brain mask = template mask through the inverse transforms (linear, >= 0.5), holes
       filled, largest component, intersected with the head's foreground.

    Returns
    -------
    dict
        ``anat2std_xfm`` ([warp, affine], moving T1w -> fixed template, apply order),
        ``std2anat_xfm`` ([inverse affine, inverse warp]), ``t1w_std`` (T1w resampled on
        the template grid), ``brain_mask``, ``t1w_brain``, ``qc`` (figures used by
        :func:`check_registration`).
    """
    import ants

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    head = ants.image_read(str(t1w_file), pixeltype="float")
    tpl = ants.image_read(str(template_t1w), pixeltype="float")
    tpl_mask = ants.image_read(str(template_mask), pixeltype="float")
    tpl_mask = (tpl_mask > 0.5).astype("float32")
    syn = _affine_then_syn(head, tpl, tpl_mask, out_dir, _params(sloppy), random_seed)
    anat2std, std2anat = _write_itk_transforms(syn, out_dir)
    fg = head_mask(head)
    soft, mask = _brain_mask_from_template(head, tpl_mask, fg, std2anat)
    t1w_std = ants.apply_transforms(tpl, head, anat2std, interpolator="linear",
                                    whichtoinvert=[False, False])
    t1w_brain = head * mask
    qc = _registration_qc(head, tpl, tpl_mask, fg, soft, mask, t1w_std)
    out = {"anat2std_xfm": anat2std, "std2anat_xfm": std2anat, "qc": qc}
    for key, img in (("t1w_std", t1w_std), ("brain_mask", mask.astype("uint8")),
                     ("t1w_brain", t1w_brain)):
        out[key] = str(out_dir / f"{key}.nii.gz")
        ants.image_write(img, out[key])
    return out


def _affine_then_syn(head: ants.ANTsImage, tpl: ants.ANTsImage, tpl_mask: ants.ANTsImage,
                     out_dir: Path, prm: dict, random_seed: int) -> dict:
    """Steps 1-3 of :func:`register_core`: affine of the cropped head, then affine + SyN of
    the head masked by the template's dilated mask; antspyx's result of the SyN stage."""
    import ants

    tpl_brain = tpl * tpl_mask
    dil_vox = max(1, int(round(8.0 / min(tpl.spacing))))
    tpl_roi = ants.iMath(tpl_mask, "MD", dil_vox)
    cropped = head * head_mask(head, fov_mm=FOV_MM)
    with ants_seed(random_seed):
        aff = ants.registration(
            tpl_brain, cropped, type_of_transform="Affine", mask=tpl_roi,
            mask_all_stages=True, aff_metric="mattes", aff_random_sampling_rate=0.25,
            aff_iterations=prm["aff_iterations"], aff_shrink_factors=prm["aff_shrink_factors"],
            aff_smoothing_sigmas=prm["aff_smoothing_sigmas"],
            outprefix=str(out_dir / "affine_"))
        roi = ants.apply_transforms(head, tpl_roi, aff["fwdtransforms"],
                                    whichtoinvert=[True], interpolator="nearestNeighbor")
        return ants.registration(
            tpl_brain, head * roi, type_of_transform="SyN",
            initial_transform=aff["fwdtransforms"], mask=tpl_roi, mask_all_stages=True,
            aff_metric="mattes", aff_random_sampling_rate=0.25,
            aff_iterations=prm["aff_iterations"][1:], syn_metric="mattes",
            aff_shrink_factors=prm["aff_shrink_factors"][1:],
            aff_smoothing_sigmas=prm["aff_smoothing_sigmas"][1:],
            reg_iterations=prm["reg_iterations"], outprefix=str(out_dir / "syn_"))


def _write_itk_transforms(syn: dict, out_dir: Path) -> tuple[list[str], list[str]]:
    """The SyN result as named files: (anat2std, std2anat) lists in apply order."""
    import ants

    fwd = [str(p) for p in syn["fwdtransforms"]]
    warp = next(p for p in fwd if p.endswith(".nii.gz"))
    affine = next(p for p in fwd if p.endswith(".mat"))
    inv_warp = next(str(p) for p in syn["invtransforms"] if str(p).endswith(".nii.gz"))
    files = {
        "affine": out_dir / "from-T1w_to-template_affine.txt",
        "warp": out_dir / "from-T1w_to-template_warp.nii.gz",
        "inv_affine": out_dir / "from-template_to-T1w_affine.txt",
        "inv_warp": out_dir / "from-template_to-T1w_warp.nii.gz",
    }
    # ITK text affines (as fMRIPrep writes them): a ``.mat`` first in a two-element list makes
    # ants.apply_transforms silently invert it unless whichtoinvert is given.
    forward = ants.read_transform(affine)
    ants.write_transform(forward, str(files["affine"]))
    ants.write_transform(forward.invert(), str(files["inv_affine"]))
    move_into_place(warp, files["warp"])
    move_into_place(inv_warp, files["inv_warp"])
    return ([str(files["warp"]), str(files["affine"])],
            [str(files["inv_affine"]), str(files["inv_warp"])])


def _brain_mask_from_template(head: ants.ANTsImage, tpl_mask: ants.ANTsImage,
                              fg: ants.ANTsImage, std2anat: list[str],
                              ) -> tuple[ants.ANTsImage, ants.ANTsImage]:
    """Step 4: the template mask on the T1w grid (soft, and the refined binary mask)."""
    import ants

    soft = ants.apply_transforms(head, tpl_mask, std2anat, interpolator="linear",
                                 whichtoinvert=[False, False])
    mask = (soft > 0.5).astype("float32")
    mask = ants.iMath(mask, "GetLargestComponent")
    mask = ants.iMath(mask, "FillHoles") * fg
    mask = ants.iMath(mask, "GetLargestComponent")
    return soft, mask


def _registration_qc(head: ants.ANTsImage, tpl: ants.ANTsImage, tpl_mask: ants.ANTsImage,
                     fg: ants.ANTsImage, soft: ants.ANTsImage, mask: ants.ANTsImage,
                     t1w_std: ants.ANTsImage) -> dict:
    """Figures :func:`check_registration` judges: correlation, mask in head, brain volume."""
    sel = tpl_mask.numpy() > 0
    corr = float(np.corrcoef(t1w_std.numpy()[sel], tpl.numpy()[sel])[0, 1])
    m = mask.numpy() > 0
    return {
        "correlation": corr if np.isfinite(corr) else 0.0,
        "mask_in_head": float((fg.numpy()[soft.numpy() > 0.5] > 0).mean()) if m.any() else 0.0,
        "brain_volume_ml": float(m.sum() * np.prod(head.spacing) / 1000.0),
    }


def check_registration(qc: dict, source: str) -> None:
    """Raise :class:`RegistrationError` when the registration figures are implausible.

    ``qc`` holds the Pearson correlation of the normalised T1w with the template inside the
    template brain mask (``correlation``), the fraction of the back-warped template mask that
    lies on the head's foreground (``mask_in_head``) and the brain volume in ml.
    """
    problems = []
    if qc["correlation"] < MIN_CORRELATION:
        problems.append(f"correlation with the template {qc['correlation']:.2f} < "
                        f"{MIN_CORRELATION}")
    if qc["mask_in_head"] < MIN_MASK_IN_HEAD:
        problems.append(f"only {qc['mask_in_head']:.0%} of the template brain mask lands on "
                        f"the head (< {MIN_MASK_IN_HEAD:.0%})")
    lo, hi = BRAIN_VOLUME_ML
    if not lo <= qc["brain_volume_ml"] <= hi:
        problems.append(f"brain volume {qc['brain_volume_ml']:.0f} ml outside [{lo:.0f}, "
                        f"{hi:.0f}] ml")
    if problems:
        raise RegistrationError(
            f"Registration of {source} to the template failed: " + "; ".join(problems)
            + ". Check the image (orientation in the header, field of view, contrast) in a "
            "viewer; a T1w with the head far from the image centre or a wrong header "
            "orientation is the usual cause."
        )


def segment_core(t1w_file: PathLike, mask_file: PathLike, out_dir: PathLike, *,
                 priors: Sequence[PathLike] | None = None,
                 std2anat_xfm: Sequence[PathLike] | None = None,
                 sloppy: bool = False) -> dict:
    """GM/WM/CSF probability maps and a discrete segmentation inside the brain mask.

    With ``priors`` ([GM, WM, CSF] template maps) and ``std2anat_xfm``, the priors are
    warped to the T1w and initialise Atropos (prior weight 0.25, MRF 0.1); otherwise
    Atropos starts from intensity k-means (classes ordered CSF < GM < WM by intensity).

    Returns
    -------
    dict
        ``tpms`` ([GM, WM, CSF] paths) and ``dseg`` (0 background, 1 GM, 2 WM, 3 CSF).
    """
    import ants

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    native = ants.image_read(str(t1w_file), pixeltype="float")
    native_mask = (ants.image_read(str(mask_file), pixeltype="float") > 0.5).astype("float32")
    # sub-millimetre images are segmented on a 1 mm grid (Atropos cost grows with voxels)
    coarse = min(native.spacing) < SEG_MIN_SPACING_MM * 0.95
    if coarse:
        spacing = tuple(max(s, SEG_MIN_SPACING_MM) for s in native.spacing)
        t1w = ants.resample_image(native, spacing, use_voxels=False, interp_type=0)
        mask = ants.resample_image(native_mask, spacing, use_voxels=False, interp_type=1)
    else:
        t1w, mask = native, native_mask
    inside = mask.numpy() > 0
    conv = "[3,0.001]" if sloppy else "[5,0.0005]"
    # r=0: Atropos seeds its random number generator with a constant (its default, 1, seeds
    # it from the clock, and reruns then give different segmentations)
    if priors:
        if not std2anat_xfm:
            raise ValueError("std2anat_xfm is needed to warp the tissue priors")
        warped = []
        for path in priors:
            tpm = ants.apply_transforms(t1w, ants.image_read(str(path), pixeltype="float"),
                                        list(std2anat_xfm), interpolator="linear",
                                        whichtoinvert=[False] * len(std2anat_xfm))
            warped.append(np.clip(tpm.numpy(), 0, 1))
        stack = np.stack(warped) + 1e-3  # no class is impossible anywhere in the mask
        stack /= stack.sum(0)
        prior_imgs = [t1w.new_image_like((p * inside).astype("float32")) for p in stack]
        res = ants.atropos(a=t1w, x=mask, i=prior_imgs, m="[0.1,1x1x1]", c=conv,
                           priorweight=0.25, r=0)
        posteriors = list(res["probabilityimages"])  # GM, WM, CSF order
    else:
        res = ants.atropos(a=t1w, x=mask, i="KMeans[3]", m="[0.1,1x1x1]", c=conv, r=0)
        csf, gm, wm = res["probabilityimages"]  # ordered by intensity
        posteriors = [gm, wm, csf]
    if coarse:
        posteriors = [ants.resample_image_to_target(p, native, interp_type="linear")
                      for p in posteriors]
    inside = native_mask.numpy() > 0
    probs = np.stack([np.where(inside, np.clip(p.numpy(), 0, 1), 0) for p in posteriors])
    total = probs.sum(0)
    probs = np.where(total > 0, probs / np.where(total > 0, total, 1), 0)
    probs[2] = np.where(inside & (total == 0), 1.0, probs[2])  # lost voxels: call them CSF
    t1w = native
    dseg = np.where(inside, np.argmax(probs, axis=0) + 1, 0).astype("uint8")
    out: dict[str, Any] = {"tpms": []}
    for name, prob in zip(("GM", "WM", "CSF"), probs):
        path = out_dir / f"label-{name}_probseg.nii.gz"
        ants.image_write(t1w.new_image_like(prob.astype("float32")), str(path))
        out["tpms"].append(str(path))
    out["dseg"] = str(out_dir / "dseg.nii.gz")
    ants.image_write(t1w.new_image_like(dseg.astype("float32")).astype("uint8"), out["dseg"])
    return out
