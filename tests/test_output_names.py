"""One table of output names (derivatives.OUTPUT_NAMES): the derivatives workflows name every
file from it, and every entry names a file some workflow writes."""

from __future__ import annotations

from bids_dfc.derivatives import OUTPUT_NAMES, build_path
from bids_dfc.workflows.anat import _anat_outputs
from bids_dfc.workflows.bold import _bold_outputs
from bids_dfc.workflows.connectivity import _atlas_outputs, _seed_outputs

SOURCE = "/raw/sub-01/ses-1/func/sub-01_ses-1_task-rest_run-2_bold.nii.gz"


def _rows():
    return [*_anat_outputs("MNI152NLin2009cAsym"), *(r for r, _ in _bold_outputs("MNI152")),
            *_seed_outputs("MNI152"), *_atlas_outputs("toy", "MNI152")]


def test_every_output_is_named_from_the_table_and_every_name_is_used():
    rows = _rows()
    assert {row.field for row in rows} | {"atlas_relmats"} == set(OUTPUT_NAMES)
    for row in rows:
        name = OUTPUT_NAMES[row.field]
        assert row.sink["suffix"] == name.suffix, row.field
        assert row.sink.get("extension") == name.extension, row.field
        fixed = {**row.sink.get("extra_entities", {}),
                 **{k: row.sink[k] for k in ("desc", "space", "label") if k in row.sink}}
        assert dict(name.entities).items() <= fixed.items(), row.field


def test_reader_patterns_match_the_written_names():
    """What a reader globs (pattern) is what the sink writes (build_path), for every row
    whose name is complete without map-over inputs."""
    for row in _rows():
        if row.map_over:
            continue
        entities = {**row.sink.get("extra_entities", {}),
                    **{k: row.sink[k] for k in ("desc", "space", "label") if k in row.sink}}
        written = build_path(SOURCE, suffix=row.sink["suffix"],
                             extension=row.sink.get("extension", ".nii.gz"), entities=entities)
        fixed = dict(OUTPUT_NAMES[row.field].entities)
        tail = OUTPUT_NAMES[row.field].pattern(
            **{k: v for k, v in entities.items() if k not in fixed})
        assert written.name == "sub-01_ses-1_task-rest_run-2" + tail, row.field
