"""Validate the anatomical workflow on real scans and save overlay images.

Data (not needed by the test suite): ``/work/shared/data`` (or ``--data``)

- ``studyforrest/sub-02/anat/sub-02_T1w.nii.gz``: 0.7 mm, de-faced head with neck -- checks
  that skull stripping and normalisation work on a real head (visual check of the overlays,
  registration correlation);
- ``ds002748_anat/sub-0[1-6]/anat/*_T1w.nii.gz``: six real T1w already skull-stripped by the
  data providers -- their non-zero voxels are an outside reference brain mask: we report the
  Dice of our mask with it, and the share of their mask that ours covers.

For every scan the full (non-sloppy) ``init_anat_wf`` runs (``--sloppy`` for a quick look),
and three PNGs are written to ``--out`` (default ``validation/results/anat``): the brain mask
contour on the N4-corrected T1w, the tissue segmentation, and the T1w in template space with
the template brain outline.  ``anat_validation.tsv`` there collects the figures.

Usage::

    .venv/bin/python validation/validate_anat.py [--data DIR] [--out DIR] [--sloppy]
        [--only studyforrest|ds002748] [--nprocs 2]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _scans(data: Path, only: str | None) -> list[tuple[str, Path, bool]]:
    scans = []
    if only in (None, "studyforrest"):
        scans += [("studyforrest_sub-02", p, False)
                  for p in sorted((data / "studyforrest").glob("sub-*/anat/*_T1w.nii.gz"))]
    if only in (None, "ds002748"):
        scans += [(f"ds002748_{p.parents[1].name}", p, True)
                  for p in sorted((data / "ds002748_anat").glob("sub-*/anat/*_T1w.nii.gz"))]
    return scans


def _run(t1w: Path, work: Path, sloppy: bool, nprocs: int) -> dict:
    from bids_dfc.templates import get_template
    from bids_dfc.workflows.anat import init_anat_wf

    template = get_template("auto", 2)
    wf = init_anat_wf(template=template, sloppy=sloppy, omp_nthreads=nprocs, random_seed=1)
    wf.base_dir = str(work)
    wf.inputs.inputnode.t1w = str(t1w)
    start = time.perf_counter()
    graph = wf.run(plugin="Linear")
    out = {"wall_s": round(time.perf_counter() - start, 1), "template": template.name}
    for node in graph.nodes():
        res = node.result.outputs
        if node.name == "n4":
            out["n4"] = res.out_file
        elif node.name == "register":
            out.update(mask=res.out_mask, t1w_std=res.t1w_std, qc=res.qc)
        elif node.name == "segment":
            out["dseg"] = res.dseg
    out["template_t1w"], out["template_mask"] = template.t1w, template.brain_mask
    return out


def _figures(name: str, res: dict, out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    from nilearn import plotting

    files = []
    disp = plotting.plot_anat(res["n4"], display_mode="ortho", dim=-0.3,
                              title=f"{name}: brain mask")
    disp.add_contours(res["mask"], levels=[0.5], colors="r", linewidths=1.2)
    files.append(out / f"{name}_mask.png")
    disp.savefig(files[-1], dpi=90)
    disp.close()
    disp = plotting.plot_roi(res["dseg"], bg_img=res["n4"], display_mode="ortho", alpha=0.45,
                             cmap="Set1", title=f"{name}: GM 1 / WM 2 / CSF 3")
    files.append(out / f"{name}_dseg.png")
    disp.savefig(files[-1], dpi=90)
    disp.close()
    disp = plotting.plot_anat(res["t1w_std"], display_mode="ortho", cut_coords=(0, -18, 14),
                              dim=-0.3, title=f"{name}: T1w in {res['template']}")
    disp.add_contours(res["template_mask"], levels=[0.5], colors="y", linewidths=1.2)
    files.append(out / f"{name}_std.png")
    disp.savefig(files[-1], dpi=90)
    disp.close()
    return [str(f) for f in files]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("/work/shared/data"))
    parser.add_argument("--out", type=Path, default=ROOT / "validation" / "results" / "anat")
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--sloppy", action="store_true")
    parser.add_argument("--only", choices=["studyforrest", "ds002748"], default=None)
    parser.add_argument("--scan", action="append", default=None,
                        help="run only these scans (e.g. ds002748_sub-03); repeatable")
    parser.add_argument("--tag", default="", help="suffix of the TSV name (parallel runs)")
    parser.add_argument("--nprocs", type=int, default=2)
    args = parser.parse_args(argv)
    scans = _scans(args.data, args.only)
    if args.scan:
        scans = [s for s in scans if s[0] in args.scan]
    if not scans:
        raise SystemExit(f"No T1w found under {args.data}: pass --data")
    args.out.mkdir(parents=True, exist_ok=True)
    work = args.work or Path(tempfile.mkdtemp(prefix="validate_anat_"))
    rows = []
    suffix = "".join("_" + x for x in (args.only, args.tag) if x)
    suffix += "_sloppy" if args.sloppy else ""
    tsv = args.out / f"anat_validation{suffix}.tsv"
    for name, t1w, stripped in scans:
        res = _run(t1w, work / name, args.sloppy, args.nprocs)
        est = np.asarray(nib.load(res["mask"]).dataobj) > 0
        qc = res.get("qc")
        qc = qc if isinstance(qc, dict) else {}  # undefined when reusing an old work dir
        row = {"scan": name, "wall_s": res["wall_s"], **{k: round(v, 3) for k, v in
                                                           qc.items()}}
        if stripped:
            ref = np.asarray(nib.load(str(t1w)).dataobj) > 0
            row["dice_vs_provided_stripping"] = round(
                float(2 * (est & ref).sum() / (est.sum() + ref.sum())), 4)
            row["provided_mask_covered"] = round(float((est & ref).sum() / ref.sum()), 4)
        row["figures"] = ";".join(Path(f).name for f in _figures(name, res, args.out))
        rows.append(row)
        print(json.dumps(row), flush=True)
        # rewritten after every scan, so an interrupted run keeps what it measured
        keys = list(dict.fromkeys(k for r in rows for k in r))
        tsv.write_text("\t".join(keys) + "\n" + "\n".join(
            "\t".join(str(r.get(k, "n/a")) for k in keys) for r in rows) + "\n")
    print(f"wrote {tsv}")


if __name__ == "__main__":
    main()
