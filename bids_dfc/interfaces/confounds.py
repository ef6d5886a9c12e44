"""Confounds of a BOLD run (fMRIPrep column names) as a TSV with a JSON sidecar."""

from __future__ import annotations

import json
import os

import nibabel as nb
import numpy as np
from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    SimpleInterface,
    TraitedSpec,
    traits,
)

from bids_dfc.preproc.confounds import confounds_core


class _ConfoundsInputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="motion-corrected run")
    bold_mask = File(exists=True, mandatory=True)
    wm_mask = File(exists=True, mandatory=True)
    csf_mask = File(exists=True, mandatory=True)
    matrices = File(exists=True, mandatory=True, desc="head-motion matrices (.npy)")
    tr = traits.Float(mandatory=True)
    high_pass = traits.Either(None, traits.Float, mandatory=True, desc="aCompCor high-pass, Hz")
    n_components = traits.Float(mandatory=True, desc="aCompCor components, or variance < 1")
    fd_threshold = traits.Either(None, traits.Float, default=None, usedefault=True)


class _ConfoundsOutputSpec(TraitedSpec):
    out_file = File(exists=True, desc="confounds TSV")
    out_meta = File(exists=True, desc="its JSON sidecar content")


class ComputeConfounds(SimpleInterface):
    """Write the confounds TSV (``n/a`` for undefined values) and its sidecar content."""

    input_spec = _ConfoundsInputSpec
    output_spec = _ConfoundsOutputSpec

    def _run_interface(self, runtime):
        img = nb.load(self.inputs.in_file)
        masks = [np.asanyarray(nb.load(getattr(self.inputs, k)).dataobj) > 0
                 for k in ("bold_mask", "wm_mask", "csf_mask")]
        n_comp = self.inputs.n_components
        n_comp = int(n_comp) if n_comp >= 1 else n_comp
        table, meta = confounds_core(np.asanyarray(img.dataobj), img.affine, *masks,
                                     np.load(self.inputs.matrices), self.inputs.tr,
                                     high_pass=self.inputs.high_pass, n_components=n_comp,
                                     fd_threshold=self.inputs.fd_threshold)
        out = os.path.abspath("confounds.tsv")
        table.to_csv(out, sep="\t", index=False, na_rep="n/a", float_format="%.8g")
        meta_file = os.path.abspath("confounds.json")
        with open(meta_file, "w") as fh:
            json.dump(meta, fh, indent=2)
        self._results["out_file"] = out
        self._results["out_meta"] = meta_file
        return runtime
