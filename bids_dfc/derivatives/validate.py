"""Check a bids_dfc output folder the way a reviewer would (nipype-free).

* every file name against the BIDS schema's derivative rules, via ``bidsschematools``
  (``rules.regexify_filename_rules`` over ``rules.files.deriv`` + ``common`` + ``raw``:
  its ``validate_bids()`` loads the raw-data rules only);
* the outputs whose kind the specification does not cover yet against the conventions they
  follow (:data:`CONVENTIONS`: fMRIPrep, BEP014, BEP012/BEP017 as XCP-D writes them);
* every ``bids:<name>:<path>`` URI in a JSON sidecar against ``DatasetLinks`` of
  dataset_description.json: the link must exist and the file it names too.

``bids-dfc-check OUTPUT_DIR`` prints the result (docs/outputs.md, "Checking the outputs").
The npm bids-validator 1.x checks raw datasets only; this is the check for the outputs.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from bids_dfc.derivatives import GROUP_FILES

#: a BIDS label, and the subject/session folders and entity chain of a participant file
_LABEL = r"[0-9a-zA-Z+]+"
_FOLDER = rf"sub-{_LABEL}/(?:ses-{_LABEL}/)?(?:anat|func)/"
_ENTITIES = rf"sub-{_LABEL}(?:_[a-z]+-{_LABEL})*"


def _participant(tail: str) -> str:
    return rf"{_FOLDER}{_ENTITIES}{tail}"


@dataclass(frozen=True)
class Convention:
    """Outputs the specification does not define yet: what they are, whose convention."""

    kind: str
    follows: str
    pattern: str


#: every output bids_dfc writes outside the BIDS schema's rules (docs/outputs.md lists them)
CONVENTIONS: tuple[Convention, ...] = (
    Convention("transforms", "BEP014 / fMRIPrep (from-, to-, mode-image, desc-affine / "
               "desc-warp of a split ANTs transform, _xfm)",
               _participant(rf"_from-{_LABEL}_to-{_LABEL}_mode-image(?:_desc-{_LABEL})?"
                            r"_xfm\.(?:h5|mat|txt|nii\.gz|json)")),
    Convention("BOLD reference", "fMRIPrep (_boldref)",
               _participant(r"_boldref\.(?:nii\.gz|json)")),
    Convention("time series (confounds, seeds, atlas, DCC)", "BEP012 / fMRIPrep / XCP-D "
               "(desc-confounds, seg-<atlas>_stat-mean, desc-dcc; _timeseries)",
               _participant(r"_timeseries\.(?:tsv|json)")),
    Convention("relationship matrices", "BEP017 / XCP-D (seg-<atlas>_stat-<measure>_relmat)",
               _participant(rf"_seg-{_LABEL}_stat-{_LABEL}_relmat\.(?:tsv|json)")),
    Convention("dFC summaries", "bids_dfc, in XCP-D's per-segmentation form "
               "(seg-seeds_dfc, seg-<atlas>_edges)",
               _participant(rf"_seg-{_LABEL}_(?:dfc|edges)\.(?:tsv|json)")),
    Convention("participant reports", "fMRIPrep (sub-<label>.html, sub-<label>/figures/)",
               rf"sub-{_LABEL}\.html|sub-{_LABEL}/figures/[^/]+\.(?:png|svg)"),
    Convention("group level", "bids_dfc (group/, no sub- entity and no participant suffix)",
               r"group/(?:" + "|".join(re.escape(n) for n in GROUP_FILES.values())
               + r"|(?:trial/)?[0-9a-z_]+\.json|figures/[0-9a-z_]+\.png)"),
    Convention("licence of the input", "the input dataset's own LICENSE file, copied",
               r"LICENSE"),
)


@cache
def schema_rules() -> tuple[re.Pattern, ...]:
    """The BIDS schema's file-name rules for a derivatives dataset (bidsschematools)."""
    try:
        from bidsschematools import rules, schema
    except ImportError as exc:  # a test extra, not needed to run the app
        raise RuntimeError("checking names needs bidsschematools: "
                           "pip install bidsschematools") from exc
    bids = schema.load_schema()
    groups = (bids.rules.files.deriv, bids.rules.files.common, bids.rules.files.raw)
    return tuple(re.compile(rule["regex"]) for group in groups
                 for rule in rules.regexify_filename_rules(group, bids, level=2))


def schema_version() -> str:
    from bidsschematools import schema

    bids = schema.load_schema()
    return f"BIDS {bids.bids_version}, schema {bids.schema_version}"


@dataclass
class Report:
    """What :func:`check_outputs` found."""

    by_schema: list[str] = field(default_factory=list)
    by_convention: dict[str, list[str]] = field(default_factory=dict)
    unmatched: list[str] = field(default_factory=list)
    uris: int = 0
    unresolved: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.unmatched or self.unresolved)


def classify(relpath: str) -> str | None:
    """``"schema"``, the kind of the convention the path follows, or None."""
    if any(rule.fullmatch(relpath) for rule in schema_rules()):
        return "schema"
    for convention in CONVENTIONS:
        if re.fullmatch(convention.pattern, relpath):
            return convention.kind
    return None


def _files(output_dir: Path) -> list[str]:
    """Every file of the dataset, hidden ones (the lock, staging) apart, as BIDS tools do."""
    out = []
    for path in sorted(output_dir.rglob("*")):
        rel = path.relative_to(output_dir)
        if path.is_file() and not any(part.startswith(".") for part in rel.parts):
            out.append(rel.as_posix())
    return out


def _uris(value, found: list[str]) -> list[str]:
    if isinstance(value, str) and value.startswith("bids:"):
        found.append(value)
    elif isinstance(value, dict):
        for item in value.values():
            _uris(item, found)
    elif isinstance(value, list):
        for item in value:
            _uris(item, found)
    return found


def resolve_uri(uri: str, output_dir: Path, links: dict[str, str]) -> Path | None:
    """The local file a ``bids:<name>:<path>`` URI names (``bids::`` is this dataset),
    or None when ``<name>`` has no DatasetLinks entry that is a local path."""
    _, name, path = uri.split(":", 2)
    if not name:
        return output_dir / path
    target = links.get(name)
    if target is None or re.match(r"^[a-z][a-z0-9+.-]*:", target):  # doi:, https:, ...
        return None
    root = Path(target.removeprefix("file://"))
    return (root if root.is_absolute() else output_dir / root) / path


def check_outputs(output_dir: Path) -> Report:
    """Check every output name and every ``bids:`` URI of ``output_dir``."""
    output_dir = Path(output_dir)
    report = Report()
    for rel in _files(output_dir):
        kind = classify(rel)
        if kind == "schema":
            report.by_schema.append(rel)
        elif kind:
            report.by_convention.setdefault(kind, []).append(rel)
        else:
            report.unmatched.append(rel)
    try:
        description = json.loads((output_dir / "dataset_description.json").read_text())
    except (OSError, json.JSONDecodeError):
        description = {}
    links = description.get("DatasetLinks", {})
    for rel in _files(output_dir):
        if not rel.endswith(".json") or rel == "dataset_description.json":
            continue
        try:
            meta = json.loads((output_dir / rel).read_text())
        except (OSError, json.JSONDecodeError):
            report.unresolved.append(f"{rel}: not valid JSON")
            continue
        for uri in _uris(meta, []):
            report.uris += 1
            target = resolve_uri(uri, output_dir, links)
            if target is None:
                report.unresolved.append(f"{rel}: {uri} (no local DatasetLinks entry)")
            elif not target.exists():
                report.unresolved.append(f"{rel}: {uri} -> {target} does not exist")
    return report


def summary(report: Report) -> str:
    """The lines ``bids-dfc-check`` prints."""
    lines = [f"{len(report.by_schema)} files match the BIDS schema's rules ({schema_version()})"]
    for kind, files in report.by_convention.items():
        lines.append(f"{len(files)} files follow the documented convention for {kind}")
    lines.append(f"{report.uris} bids: URIs, {report.uris - len(report.unresolved)} resolved "
                 "through DatasetLinks")
    lines += [f"not in the schema nor a documented convention: {rel}"
              for rel in report.unmatched]
    lines += [f"unresolved: {line}" for line in report.unresolved]
    lines.append("OK" if report.ok else
                 f"{len(report.unmatched) + len(report.unresolved)} problem(s)")
    return "\n".join(lines)
