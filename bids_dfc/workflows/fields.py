"""The contracts between the participant workflows: the fields of each inputnode/outputnode.

Every producer of preprocessed data must fill these fields exactly: ``init_anat_wf`` +
``init_bold_wf`` today, the fMRIPrep ingress next (docs/architecture.md describes each field).
The rows of the derivatives workflows' output tables (:class:`Derivative`) are defined here too.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as dataclass_field

#: outputnode of ``init_anat_wf``
ANAT_OUTPUTS = [
    "t1w_preproc", "t1w_brain", "t1w_mask", "t1w_dseg", "t1w_tpms", "anat2std_xfm",
    "std2anat_xfm", "template_ref", "template_mask", "t1w_std", "registration_qc",
]  # fmt: skip
#: anatomical fields the functional workflow takes from the anat workflow's outputnode
ANAT_FIELDS = ["t1w_preproc", "t1w_brain", "t1w_mask", "t1w_dseg", "t1w_tpms",
               "anat2std_xfm", "std2anat_xfm", "template_ref", "template_mask"]  # fmt: skip
#: outputnode of ``init_bold_wf`` (docs/architecture.md), then the sidecar contents the sinks
#: need
BOLD_OUTPUTS = ["bold_ref", "bold_mask", "bold_preproc", "bold_denoised", "confounds_tsv",
                "boldref2anat_xfm", "anat2boldref_xfm", "wm_mask_bold", "csf_mask_bold",
                "n_dummy", "bold_std", "confounds_meta", "denoise_meta", "coreg_report",
                "masks_report", "tr"]  # fmt: skip
#: inputnode of ``init_connectivity_wf``
CONNECTIVITY_INPUTS = ["bold_file", "bold_denoised", "bold_mask", "bold_ref", "bold_std",
                       "template_ref", "template_mask", "anat2boldref_xfm", "std2anat_xfm",
                       "confounds_tsv"]  # fmt: skip
#: outputnode of ``init_connectivity_wf``: the seed fields, then the atlas fields (undefined
#: without an atlas; the outputnode of ``init_atlas_dfc_wf``)
SEED_OUTPUTS = ["seed_timeseries", "seed_dcc", "seed_dfc", "seed_weights", "seed_info",
                "dfc_meta"]  # fmt: skip
ATLAS_OUTPUTS = ["atlas_timeseries", "atlas_dcc", "atlas_dfc", "atlas_dseg", "atlas_info",
                 "atlas_relmats", "atlas_relmat_stats", "atlas_meta"]  # fmt: skip
#: inputnode of ``init_atlas_dfc_wf`` (plus ``transforms``, the merged transform list of the
#: native seed space)
ATLAS_DFC_INPUTS = ["template_ref", "template_mask", "bold_ref", "bold_mask", "bold_denoised",
                    "bold_std", "confounds_tsv"]  # fmt: skip


@dataclass(frozen=True)
class Derivative:
    """One row of a derivatives workflow's table: what one ``DerivativesDataSink`` stores.

    The file name comes from the raw source file's entities plus ``sink`` (never from the
    node name, which only names the node's folder in the work directory).
    """

    #: inputnode field holding the file (a list for a ``MapNode`` sink)
    field: str
    #: name of the sink node
    node: str
    #: ``DerivativesDataSink`` inputs: ``suffix``, ``extension``, ``desc``, ``space``,
    #: ``extra_entities``, ``write_sidecar``
    sink: dict
    #: the output's own sidecar fields, merged over the workflow's common ones (None: the
    #: sink gets no static ``meta_dict``)
    meta: dict | None = None
    #: ``MapNode`` sinks: input name -> one value per file (``in_file`` is iterated too)
    map_over: dict = dataclass_field(default_factory=dict)
