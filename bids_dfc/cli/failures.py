"""A failed participant run told as one paragraph per failed step (as fMRIPrep does): the
subject, the step, the cause (the exception's own message), the crash file that holds the
full traceback; then which subjects failed and how to resume."""

from __future__ import annotations

import re
from pathlib import Path

_SUBJECT = re.compile(r"\.sub_([A-Za-z0-9]+)_wf\.")
_EXCEPTION = re.compile(r"^(?:[A-Za-z_][\w.]*\.)?([A-Z]\w*(?:Error|Exception|Exit))\b:?\s?(.*)$")


def _cause(traceback_text: str) -> str:
    """The innermost exception line of a crash file's traceback(s)."""
    causes = []
    for line in traceback_text.splitlines():
        found = _EXCEPTION.match(line.strip())
        if found and not found.group(1).startswith("NodeExecution"):
            causes.append(f"{found.group(1)}: {found.group(2)}".rstrip(": "))
    return causes[-1] if causes else "see the crash file"


def read_crash_file(path: Path) -> tuple[str, str]:
    """(node full name, cause) of a nipype text crash file."""
    text = path.read_text(errors="replace")
    node = next((ln[len("Node: "):].strip() for ln in text.splitlines()
                 if ln.startswith("Node: ")), "unknown step")
    return node, _cause(text)


def failure_report(log_dir: Path, since: float, subjects: list[str], message: str,
                   work_dir: Path) -> tuple[str, list[str]]:
    """The error message of a participant run whose workflow raised ``message``, and the
    labels of the subjects that finished (no failed step)."""
    crashes = sorted((p for p in Path(log_dir).glob("crash-*.txt")
                      if p.stat().st_mtime >= since - 1), key=lambda p: p.stat().st_mtime)
    failed: dict[str, None] = {}
    paragraphs = []
    for crash in crashes:
        node, cause = read_crash_file(crash)
        found = _SUBJECT.search(f".{node}.")
        subject = f"sub-{found.group(1)}" if found else "all subjects"
        failed[subject] = None
        step = ".".join(p for p in node.split(".")[1:] if not p.startswith("sub_"))
        paragraphs.append(f"{subject}, step {step}: {cause}\n    (full traceback: {crash})")
    if not paragraphs:
        paragraphs.append(f"the workflow stopped: {message}")
    done = [f"sub-{s}" for s in subjects if f"sub-{s}" not in failed]
    summary = f"failed: {', '.join(failed) or 'unknown'}"
    if done and failed:
        summary += f"; finished: {', '.join(done)}"
    text = ("the participant level failed:\n  " + "\n  ".join(paragraphs)
            + f"\n{summary}. Fix the cause and run the same command with the same "
            f"--work-dir {work_dir}: finished steps are not run again.")
    return text, [s for s in subjects if f"sub-{s}" not in failed and failed]
