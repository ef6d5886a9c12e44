"""The contracts between the participant workflows: the fields of each inputnode/outputnode.

Every producer of preprocessed data must fill these fields exactly: ``init_anat_wf`` +
``init_bold_wf`` today, the fMRIPrep ingress next (docs/architecture.md describes each field).
"""

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
