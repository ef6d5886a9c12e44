#!/usr/bin/env python3
"""Manifest of every file ``make demo`` writes, and a comparison of two manifests.

Used to show that a refactor leaves the demo's outputs byte-identical (issue 13)::

    python scripts/demo_manifest.py write demo_out manifest.tsv
    python scripts/demo_manifest.py compare before.tsv after.tsv

Each row holds the path relative to the demo folder (the work directory is left out: it is
nipype's cache, not an output), the file's sha256, its size, its mode and a *content* hash:
for ``.nii``/``.nii.gz`` the sha256 of the NIfTI header bytes plus the data array (so a gzip
header that carries a time does not count as a change), for every other file the byte hash.
``compare`` names every file that was added, removed, or differs in bytes, content or mode.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import stat
import sys
from pathlib import Path

SKIP_TOP = {"work"}
#: files that differ between two runs of the same code, and why (named in every comparison)
VOLATILE = {
    "derivatives_work/.matplotlib/": "matplotlib's font cache: its font order varies run to run",
}


def _volatile(rel: str) -> str | None:
    return next((why for prefix, why in VOLATILE.items() if rel.startswith(prefix)), None)


def _content_hash(path: Path, raw: bytes) -> str:
    if path.name.endswith(".nii.gz"):
        raw = gzip.decompress(raw)
    elif not path.name.endswith(".nii"):
        return hashlib.sha256(raw).hexdigest()
    import nibabel as nib  # noqa: PLC0415 - only for images

    img = nib.Nifti1Image.from_bytes(raw)
    digest = hashlib.sha256(img.header.binaryblock)
    digest.update(img.dataobj.get_unscaled().tobytes() if hasattr(img.dataobj, "get_unscaled")
                  else img.get_fdata().tobytes())
    return digest.hexdigest()


def write_manifest(root: Path, out: Path) -> int:
    rows = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if rel.parts[0] in SKIP_TOP or not path.is_file():
            continue
        raw = path.read_bytes()
        mode = stat.S_IMODE(path.stat().st_mode)
        rows.append((rel.as_posix(), hashlib.sha256(raw).hexdigest(), str(len(raw)),
                     f"{mode:04o}", _content_hash(path, raw)))
    with open(out, "w", encoding="utf-8") as handle:
        handle.write("path\tsha256\tsize\tmode\tcontent_sha256\n")
        for row in rows:
            handle.write("\t".join(row) + "\n")
    print(f"{len(rows)} files -> {out}")
    return 0


def _read(path: Path) -> dict[str, list[str]]:
    lines = Path(path).read_text(encoding="utf-8").splitlines()[1:]
    return {line.split("\t")[0]: line.split("\t")[1:] for line in lines}


def compare(before: Path, after: Path) -> int:
    a, b = _read(before), _read(after)
    problems = []
    for rel in sorted(set(a) - set(b)):
        problems.append(f"removed  {rel}")
    for rel in sorted(set(b) - set(a)):
        problems.append(f"added    {rel}")
    same_bytes = same_content = 0
    for rel in sorted(set(a) & set(b)):
        (sha_a, size_a, mode_a, con_a), (sha_b, size_b, mode_b, con_b) = a[rel], b[rel]
        if mode_a != mode_b:
            problems.append(f"mode     {rel}: {mode_a} -> {mode_b}")
        if sha_a == sha_b:
            same_bytes += 1
        elif _volatile(rel):
            print(f"volatile (not compared) {rel}: {_volatile(rel)}")
        elif con_a == con_b:
            same_content += 1
            print(f"content-equal (bytes differ) {rel}")
        else:
            problems.append(f"differs  {rel} ({size_a} -> {size_b} bytes)")
    print(f"{len(set(a) & set(b))} common files: {same_bytes} byte-identical, "
          f"{same_content} identical in header + data only; {len(problems)} differences")
    for line in problems:
        print(line)
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("write")
    w.add_argument("root", type=Path)
    w.add_argument("out", type=Path)
    c = sub.add_parser("compare")
    c.add_argument("before", type=Path)
    c.add_argument("after", type=Path)
    args = parser.parse_args(argv)
    if args.cmd == "write":
        return write_manifest(args.root, args.out)
    return compare(args.before, args.after)


if __name__ == "__main__":
    sys.exit(main())
