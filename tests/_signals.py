"""Start a child the way a terminal starts it (imported by the signal tests).

A shell without job control starts background commands with SIGINT ignored, and bids-dfc,
like nohup'ed programs should, keeps an inherited ignore (bids_dfc/cli/signals.py): a test
suite started in the background would then send SIGINT to a child that ignores it. The
children of the signal tests get the default dispositions a terminal gives them.
"""

from __future__ import annotations

import signal


def as_from_a_terminal() -> None:
    """``preexec_fn`` for :class:`subprocess.Popen`: SIGINT and SIGTERM at their defaults."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)
