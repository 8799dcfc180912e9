"""Compile the hot modules of the SLA core to C extensions with mypyc (``make setup`` runs this).

The extensions land beside their sources in ``streams/`` (with the shared runtime as
``streams/mypyc_core__mypyc*.so``) and win at import; the sources stay the truth, and deleting the ``.so`` files
(``make uncompile``) brings the pure-Python core back. Run from the project root::

    python deploy/compile_core.py
"""

from __future__ import annotations

from mypyc.build import mypycify
from setuptools import setup

COMPILED = ["streams/kpi.py", "streams/core.py", "streams/calendar.py", "streams/conditions.py"]
"""The modules on the per-event path; the others gain little and stay plain Python."""

if __name__ == "__main__":
    setup(
        name="slaflow-core-compiled",
        ext_modules=mypycify(COMPILED, group_name="streams.mypyc_core"),
        script_args=["build_ext", "--inplace", "--quiet"],
    )
