"""Process-level tuning shared by the long-running commands (worker, replay, benchmarks)."""

from __future__ import annotations

import gc

GC_THRESHOLD = (50_000, 20, 100)
"""Generation-0 threshold raised from CPython's 700: the SLA state is many small long-lived objects, and the
default makes the cyclic collector rescan them constantly (about a quarter of the core's time)."""


def tune_gc() -> None:
    """Move everything allocated so far (modules, policies) out of the collector's sight; collect less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)
