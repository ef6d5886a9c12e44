"""Command-line parsing of bids-dfc: every option, defaults, config file, and bad values."""

from __future__ import annotations

import ast
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bids_dfc import __version__
from bids_dfc.cli.parser import _build_parser, parse_args
from bids_dfc.config import SECTIONS

POS = ["/data/bids", "/data/out", "participant"]


def _error(capsys, argv):
    with pytest.raises(SystemExit) as exc:
        parse_args(argv)
    err = capsys.readouterr().err
    return exc.value.code, err


def test_defaults_are_the_studys():
    cfg = parse_args(POS)
    wf, ex, grp = cfg.workflow, cfg.execution, cfg.group
    assert wf.dummy_scans == 4
    assert wf.smoothing_fwhm == 4.0
    assert wf.band_pass == (0.01, 0.1)
    assert wf.acompcor_components == 5
    assert wf.confounds == ["acompcor"], "the study regressed aCompCor only (METHOD.md)"
    assert wf.output_spaces == ["native"]
    assert wf.seeds is None and wf.seed_space == "native" and wf.dcc_mode == "pairwise"
    assert wf.dfc_bootstrap == 0, "the SD bootstrap is opt-in: a default run costs no more"
    assert ex.plugin == "MultiProc" and ex.plugin_args == {}
    assert ex.nprocs >= 1 and 1 <= ex.omp_nthreads <= ex.nprocs
    assert ex.work_dir == Path("/data/out_work")
    assert ex.analysis_level == "participant"
    assert grp.responder_threshold == 30.0 and grp.n_boot == 5000 and grp.pair == ("DMN", "DeS")
    assert grp.covariates == [] and grp.compare_columns == []


def test_every_option_is_stored(tmp_path):
    seeds = tmp_path / "seeds.tsv"
    seeds.write_text("name\tx\ty\tz\tradius_mm\tnetwork\n")
    atlas = tmp_path / "atlas.nii.gz"
    atlas.write_bytes(b"x")
    labels = tmp_path / "labels.tsv"
    labels.write_text("index\tname\n")
    filters = tmp_path / "filters.json"
    filters.write_text(json.dumps({"bold": {"run": 1}}))
    argv = POS + [
        "--participant_label", "sub-01", "02",
        "--session-label", "ses-pre",
        "--task", "rest", "task-rest2",
        "--bids-filter-file", str(filters),
        "-w", str(tmp_path / "work"),
        "--nprocs", "2", "--omp-nthreads", "1", "--mem-gb", "3.5",
        "--plugin", "SLURM", "--plugin-args", '{"sbatch_args": "-p debug"}',
        "--random-seed", "7", "--skip-bids-validation", "-vv", "--sloppy",
        "--dummy-scans", "auto", "--smoothing-fwhm", "6", "--band-pass", "0.008", "0.09",
        "--acompcor-components", "0.5", "--confounds", "acompcor", "motion",
        "--fd-threshold", "0.3",
        "--output-spaces", "native", "template", "--template", "MNI152NLin2009aSym",
        "--seeds", str(seeds), "--atlas", str(atlas), "--atlas-labels", str(labels),
        "--seed-space", "template", "--network-weighting", "voxel", "--dcc-mode", "joint",
        "--dfc-bootstrap", "1000",
        "--group-column", "arm", "--control-label", "ctl", "--responder-label", "resp",
        "--nonresponder-label", "nonresp", "--outcome", "relief_pct", "--predictor", "tsp",
        "--covariates", "age", "sex", "--relief-from", "pre", "post",
        "--compare-columns", "hads_anxiety", "pcs",
        "--responder-threshold", "50", "--tsp-columns", "tsp_*", "--max-mean-fd", "0.4",
        "--n-boot", "200", "--all-pairs", "--pair", "PCC", "PAG",
    ]  # fmt: skip
    cfg = parse_args(argv)
    ex, wf, grp = cfg.execution, cfg.workflow, cfg.group
    assert ex.participant_label == ["01", "02"]
    assert ex.session_label == ["pre"] and ex.task == ["rest", "rest2"]
    assert ex.bids_filters == {"bold": {"run": 1}}
    assert ex.work_dir == tmp_path / "work"
    assert (ex.nprocs, ex.omp_nthreads, ex.mem_gb) == (2, 1, 3.5)
    assert ex.plugin == "SLURM" and ex.plugin_args == {"sbatch_args": "-p debug"}
    assert ex.random_seed == 7 and ex.skip_bids_validation and ex.verbose == 2 and ex.sloppy
    assert wf.dummy_scans == "auto" and wf.smoothing_fwhm == 6.0
    assert wf.band_pass == (0.008, 0.09) and wf.acompcor_components == 0.5
    assert wf.confounds == ["acompcor", "motion"]
    assert wf.fd_threshold == 0.3 and wf.output_spaces == ["native", "template"]
    assert wf.template == "MNI152NLin2009aSym"
    assert (wf.seeds, wf.atlas, wf.atlas_labels) == (seeds, atlas, labels)
    assert (wf.seed_space, wf.network_weighting, wf.dcc_mode) == ("template", "voxel", "joint")
    assert wf.dfc_bootstrap == 1000
    assert (grp.group_column, grp.control_label, grp.responder_label, grp.nonresponder_label) == (
        "arm", "ctl", "resp", "nonresp")  # fmt: skip
    assert (grp.outcome, grp.predictor, grp.covariates) == ("relief_pct", "tsp", ["age", "sex"])
    assert grp.compare_columns == ["hads_anxiety", "pcs"]
    assert grp.relief_from == ("pre", "post") and grp.responder_threshold == 50.0
    assert grp.tsp_columns == ["tsp_*"] and grp.max_mean_fd == 0.4 and grp.n_boot == 200
    assert grp.all_pairs and grp.pair == ("PCC", "PAG")
    # the whole configuration serialises (it is written into the work directory)
    json.dumps(cfg.to_dict())


@pytest.mark.parametrize(
    ("argv", "option"),
    [
        (["--nprocs", "0"], "--nprocs"),
        (["--nprocs", "two"], "--nprocs"),
        (["--omp-nthreads", "-1"], "--omp-nthreads"),
        (["--mem-gb", "0"], "--mem-gb"),
        (["--mem-gb", "lots"], "--mem-gb"),
        (["--plugin", "Spark"], "--plugin"),
        (["--plugin-args", "{not json"], "--plugin-args"),
        (["--plugin-args", "[1, 2]"], "--plugin-args"),
        (["--random-seed", "-3"], "--random-seed"),
        (["--dummy-scans", "some"], "--dummy-scans"),
        (["--dummy-scans", "-1"], "--dummy-scans"),
        (["--smoothing-fwhm", "-4"], "--smoothing-fwhm"),
        (["--smoothing-fwhm", "nan"], "--smoothing-fwhm"),
        (["--band-pass", "0.1"], "--band-pass"),
        (["--band-pass", "0.1", "0.01"], "--band-pass"),
        (["--acompcor-components", "0"], "--acompcor-components"),
        (["--acompcor-components", "2.5"], "--acompcor-components"),
        (["--confounds", "gsr"], "--confounds"),
        (["--fd-threshold", "0"], "--fd-threshold"),
        (["--output-spaces", "MNI305"], "--output-spaces"),
        (["--template", "fsaverage"], "--template"),
        (["--seeds", "/no/such/seeds.tsv"], "--seeds"),
        (["--atlas", "/no/such/atlas.nii.gz"], "--atlas"),
        (["--seed-space", "scanner"], "--seed-space"),
        (["--network-weighting", "pca"], "--network-weighting"),
        (["--dcc-mode", "full"], "--dcc-mode"),
        (["--dfc-bootstrap", "-5"], "--dfc-bootstrap"),
        (["--dfc-bootstrap", "1"], "--dfc-bootstrap"),
        (["--dfc-bootstrap", "many"], "--dfc-bootstrap"),
        (["--participant-label", "01_02"], "--participant-label"),
        (["--bids-filter-file", "/no/such.json"], "--bids-filter-file"),
        (["--config-file", "/no/such.toml"], "--config-file"),
        (["--responder-threshold", "x"], "--responder-threshold"),
        (["--max-mean-fd", "-1"], "--max-mean-fd"),
        (["--n-boot", "0"], "--n-boot"),
        (["--relief-from", "pre"], "--relief-from"),
        (["--compare-columns"], "--compare-columns"),
        (["--compare-columns", "--all-pairs"], "--compare-columns"),
    ],
)
def test_bad_values_exit_2_with_one_line_naming_the_option(capsys, argv, option):
    code, err = _error(capsys, POS + argv)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert option in lines[0] and "error" in lines[0]


def test_bad_analysis_level_and_missing_positionals(capsys):
    code, err = _error(capsys, ["/data/bids", "/data/out", "subject"])
    assert code == 2 and "analysis_level" in err and len(err.strip().splitlines()) == 1
    code, err = _error(capsys, ["/data/bids"])
    assert code == 2 and "required" in err


def test_config_file_same_keys_and_command_line_wins(tmp_path, capsys):
    cfg_file = tmp_path / "cfg.toml"
    cfg_file.write_text(
        'smoothing-fwhm = 6\nsloppy = true\nband-pass = [0.02, 0.09]\n'
        'plugin-args = {n_procs = 1}\n'
        '[workflow]\ndummy_scans = "auto"\n'
        '[group]\ncovariates = ["age", "sex"]\nn-boot = 100\nrelief-from = ["pre", "post"]\n'
        'compare-columns = ["hads_anxiety", "hads_depression", "pcs", "resilience"]\n'
    )
    cfg = parse_args(POS + ["--config-file", str(cfg_file), "--n-boot", "7"])
    assert cfg.workflow.smoothing_fwhm == 6.0 and cfg.execution.sloppy
    assert cfg.workflow.band_pass == (0.02, 0.09) and cfg.workflow.dummy_scans == "auto"
    assert cfg.execution.plugin_args == {"n_procs": 1}
    assert cfg.group.covariates == ["age", "sex"] and cfg.group.relief_from == ("pre", "post")
    assert cfg.group.n_boot == 7  # the command line wins over the file
    assert cfg.group.compare_columns == ["hads_anxiety", "hads_depression", "pcs", "resilience"]
    cfg = parse_args(POS + ["--config-file", str(cfg_file), "--compare-columns", "pcs"])
    assert cfg.group.compare_columns == ["pcs"]
    assert json.loads(json.dumps(cfg.to_dict()))["group"]["compare_columns"] == ["pcs"]

    cfg_file.write_text("[group]\ncompare-columns = []\n")
    code, err = _error(capsys, POS + ["--config-file", str(cfg_file)])
    assert code == 2 and "--compare-columns" in err and "cfg.toml" in err

    cfg_file.write_text("smoothing_fwhm = -2\n")
    code, err = _error(capsys, POS + ["--config-file", str(cfg_file)])
    assert code == 2 and "--smoothing-fwhm" in err and "cfg.toml" in err
    cfg_file.write_text("smooth = 2\n")
    code, err = _error(capsys, POS + ["--config-file", str(cfg_file)])
    assert code == 2 and "unknown key 'smooth'" in err and "smoothing-fwhm" in err
    cfg_file.write_text("smoothing = [\n")
    code, err = _error(capsys, POS + ["--config-file", str(cfg_file)])
    assert code == 2 and "not valid TOML" in err


def test_help_explains_every_option():
    text = _build_parser().format_help()
    for action in _build_parser()._actions:
        for flag in action.option_strings:
            assert flag in text
        if action.dest != "help":
            assert action.help, f"{action.dest} has no help text"
    for group in ("Selecting data", "Resources and execution", "Preprocessing",
                  "Seeds and dynamic connectivity", "Group level"):
        assert group in text


def test_console_script_version_and_help():
    exe = Path(sys.executable).with_name("bids-dfc")
    out = subprocess.run([str(exe), "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"bids-dfc {__version__}"
    out = subprocess.run([str(exe), "--help"], capture_output=True, text=True, check=True)
    assert "--participant-label" in out.stdout and "NOT FOR RESEARCH USE" in out.stdout


#: fields a minimal command line sets or parse_args computes (not the dataclass defaults)
SET_BY_ARGV = {"bids_dir", "output_dir", "analysis_level", "work_dir", "nprocs", "omp_nthreads"}


def test_minimal_argv_gives_the_config_defaults(tmp_path):
    cfg = parse_args([str(tmp_path / "bids"), str(tmp_path / "out"), "participant"])
    assert cfg.execution.bids_dir == tmp_path / "bids"
    assert cfg.execution.output_dir == tmp_path / "out"
    assert cfg.execution.work_dir == tmp_path / "out_work"
    assert cfg.execution.analysis_level == "participant"
    assert 1 <= cfg.execution.omp_nthreads <= cfg.execution.nprocs
    compared = 0
    for section in ("execution", "workflow", "group"):
        options = getattr(cfg, section)
        for f in dataclasses.fields(type(options)):
            if f.default is not dataclasses.MISSING:
                expected = f.default
            elif f.default_factory is not dataclasses.MISSING:
                expected = f.default_factory()
            else:
                assert f.name in SET_BY_ARGV, f"{section}.{f.name} has no default"
                continue
            if f.name in SET_BY_ARGV:
                continue
            value = getattr(options, f.name)
            assert value == expected and type(value) is type(expected), (
                f"{section}.{f.name}: parsed {value!r}, config.py default {expected!r}")
            compared += 1
    assert compared > 30


PARSER_SOURCE = Path(__file__).resolve().parents[1] / "bids_dfc" / "cli" / "parser.py"


def _config_fields() -> set[str]:
    return {f.name for klass in SECTIONS.values() for f in dataclasses.fields(klass)}


def _argument_dest(call: ast.Call) -> str | None:
    """The dest argparse gives an ``add_argument`` call (None if not readable statically)."""
    for kw in call.keywords:
        if kw.arg == "dest":
            return kw.value.value if isinstance(kw.value, ast.Constant) else None
    names = [a.value for a in call.args if isinstance(a, ast.Constant)]
    long = [n for n in names if n.startswith("--")]
    name = (long or names or [None])[0]
    return None if name is None else name.lstrip("-").replace("-", "_")


def _literal_defaults(source: str) -> list[str]:
    """``add_argument`` calls of config fields whose default is not ``_default("<field>")``."""
    fields = _config_fields()
    problems = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr == "add_argument"):
            continue
        dest = _argument_dest(node)
        if dest not in fields:
            continue
        for kw in node.keywords:
            if kw.arg != "default":
                continue
            value = kw.value
            try:
                ast.literal_eval(value)
            except ValueError:
                literal = False
            else:
                literal = True
            from_config = (isinstance(value, ast.Call) and isinstance(value.func, ast.Name)
                           and value.func.id == "_default" and len(value.args) == 1
                           and isinstance(value.args[0], ast.Constant)
                           and value.args[0].value == dest)
            if literal or not from_config:
                problems.append(f"line {node.lineno}: --{dest.replace('_', '-')} "
                                f"default={ast.unparse(value)}")
    return problems


def test_parser_has_no_literal_default_of_a_config_field():
    """Study defaults live in config.py only; the parser reads them with ``_default``."""
    problems = _literal_defaults(PARSER_SOURCE.read_text(encoding="utf-8"))
    assert not problems, ("defaults written in parser.py instead of _default(<field>) "
                          "(config.py holds them):\n" + "\n".join(problems))


def test_literal_default_check_catches_what_it_claims():
    bad = (
        "g.add_argument('--smoothing-fwhm', dest='smoothing_fwhm', default=4.0)\n"
        "g.add_argument('--band-pass', nargs=2, default=[0.01, 0.1])\n"
        "g.add_argument('--random-seed', default=-1)\n"
        "g.add_argument('--fd-threshold', default=None)\n"
        "g.add_argument('--confounds', default=list(DEFAULT_CONFOUNDS))\n"
        "g.add_argument('--responder-label', default=_default('control_label'))\n"
        "g.add_argument('-v', '--verbose', action='count', default=0)\n"
    )
    assert len(_literal_defaults(bad)) == 7
    good = (
        "g.add_argument('--smoothing-fwhm', dest='smoothing_fwhm', "
        "default=_default('smoothing_fwhm'))\n"
        "g.add_argument('--sloppy', action='store_true')\n"
        "g.add_argument('--not-a-field', default=3)\n"
    )
    assert _literal_defaults(good) == []


def test_max_mean_fd_none_switches_fd_qc_off():
    from bids_dfc.cli.parser import parse_args

    base = ["/tmp/bids", "/tmp/out", "group"]
    assert parse_args([*base, "--max-mean-fd", "none"]).group.max_mean_fd is None
    assert parse_args([*base, "--max-mean-fd", "None"]).group.max_mean_fd is None
    assert parse_args([*base, "--max-mean-fd", "0.3"]).group.max_mean_fd == 0.3
