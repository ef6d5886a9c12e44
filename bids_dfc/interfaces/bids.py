"""DerivativesDataSink: store one output in the BIDS-Derivatives dataset with its sidecar.

Names and sidecars come from :mod:`bids_dfc.derivatives`, the write from :mod:`bids_dfc.io`.
The naming follows BIDS-Derivatives (and fMRIPrep / XCP-D): the entities of the raw source
file (``sub``, ``ses``, ``task``, ``acq``, ``ce``, ``rec``, ``dir``, ``run``, ``echo``) are kept
in their BIDS order, then the derivative entities (``from``, ``to``, ``mode``, ``space``,
``res``, ``seg``, ``label``, ``stat``, ``meas``, ``desc``) are appended, then the suffix.
"""

from __future__ import annotations

from pathlib import Path

from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    DynamicTraitedSpec,
    File,
    SimpleInterface,
    TraitedSpec,
    isdefined,
    traits,
)

from bids_dfc.derivatives import (
    _NIFTI_EXT,
    RAW_LINK,
    build_path,
    raw_relpath,
    split_ext,
    write_sidecar,
)
from bids_dfc.io import atomic_copy


class _DerivativesDataSinkInputSpec(DynamicTraitedSpec, BaseInterfaceInputSpec):
    base_directory = traits.Str(mandatory=True, desc="derivatives dataset root (output_dir)")
    source_file = File(exists=False, mandatory=True, desc="raw BIDS file this output derives from")
    in_file = File(exists=True, mandatory=True, desc="file to store")
    suffix = traits.Str(mandatory=True, desc="BIDS suffix of the output")
    extension = traits.Str(desc="output extension (default: that of in_file)")
    desc = traits.Str(desc="desc- entity")
    space = traits.Str(desc="space- entity")
    label = traits.Str(desc="label- entity")
    extra_entities = traits.Dict(desc="other entities: from, to, mode, res, seg, stat, meas")
    datatype = traits.Str(desc="datatype folder (default: that of source_file)")
    meta_dict = traits.Dict(desc="JSON sidecar content")
    sources = traits.List(traits.Str, desc="files this output was made from (Sources field)")
    write_sidecar = traits.Bool(True, usedefault=True, desc="write the JSON sidecar")


class _DerivativesDataSinkOutputSpec(TraitedSpec):
    out_file = File(exists=True, desc="the stored file")
    out_meta = File(desc="its JSON sidecar")


class DerivativesDataSink(SimpleInterface):
    """Store one file in the BIDS-Derivatives dataset, with its JSON sidecar, atomically."""

    input_spec = _DerivativesDataSinkInputSpec
    output_spec = _DerivativesDataSinkOutputSpec
    # copying is cheap: always rerun, so a resumed run rewrites every output it owns
    _always_run = True

    def _run_interface(self, runtime):
        ins = self.inputs
        entities = dict(ins.extra_entities) if isdefined(ins.extra_entities) else {}
        for key in ("desc", "space", "label"):
            value = getattr(ins, key)
            if isdefined(value) and value:
                entities[key] = value
        ext = ins.extension if isdefined(ins.extension) else split_ext(ins.in_file)[1]
        if ext.endswith(".nii") and split_ext(ins.in_file)[1] == ".nii.gz":
            ext = ".nii.gz"
        rel = build_path(
            ins.source_file,
            suffix=ins.suffix,
            extension=ext,
            entities=entities,
            datatype=ins.datatype if isdefined(ins.datatype) else None,
        )
        out = Path(ins.base_directory) / rel
        if ext in _NIFTI_EXT and split_ext(ins.in_file)[1] != ext:
            import nibabel as nb

            tmp = Path(runtime.cwd) / ("converted" + ext)
            nb.save(nb.load(ins.in_file), tmp)
            atomic_copy(tmp, out)
        else:
            atomic_copy(ins.in_file, out)
        self._results["out_file"] = str(out)
        if ins.write_sidecar:
            meta = dict(ins.meta_dict) if isdefined(ins.meta_dict) else {}
            sources = list(ins.sources) if isdefined(ins.sources) else []
            raw = Path(ins.source_file)
            sources.insert(0, f"bids:{RAW_LINK}:{raw_relpath(raw)}")
            meta.setdefault("Sources", sources)
            self._results["out_meta"] = str(write_sidecar(out, meta))
        return runtime


