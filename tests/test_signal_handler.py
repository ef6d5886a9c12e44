"""The SIGTERM/SIGINT handler of ``bids-dfc`` (bids_dfc/cli/signals.py) when the signal
lands where Python cannot pass an exception on: a weakref callback or a ``__del__``.

Seen in a full test run: SIGTERM arrived while the import system ran its module-lock
callback; Python printed "Exception ignored in ... Interrupted: SIGTERM" and dropped the
exception, so the run could have gone on. The handler must deliver it again instead."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import os, signal, sys, weakref
    from bids_dfc.cli.signals import Interrupted, stop_on_signals

    class Thing:
        pass

    def callback(ref):  # the signal's handler runs in here, between two bytecodes
        os.kill(os.getpid(), signal.{sig})
        total = 0
        for i in range(200_000):
            total += i

    # a background job (nohup make test &) inherits SIGINT ignored, and the handler rightly
    # keeps ignored signals ignored: start from the default disposition
    signal.signal(signal.{sig}, signal.SIG_DFL)
    try:
        with stop_on_signals():
            thing = Thing()
            ref = weakref.ref(thing, callback)
            del thing
            for i in range(10_000_000):
                pass
        print("not interrupted")
    except Interrupted as exc:
        print(f"interrupted {{exc.exit_code}}")
""")


@pytest.mark.parametrize(("sig", "code"), [("SIGTERM", 143), ("SIGINT", 130)])
def test_signal_inside_a_weakref_callback_still_stops_the_run(sig, code):
    done = subprocess.run([sys.executable, "-c", SCRIPT.format(sig=sig)], capture_output=True,
                          text=True, timeout=120)
    assert done.stdout.strip() == f"interrupted {code}", done.stdout + done.stderr
    assert "Exception ignored" not in done.stderr and "Traceback" not in done.stderr, \
        done.stderr
