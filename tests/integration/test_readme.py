"""README.md cannot drift from the code: every shell block it shows runs, in order, in one shell, as a new user
would type them (a local broker, a worker, the tutorial's files), and the outputs it shows are what the
commands print.

The README carries a few hidden annotations (HTML comments, invisible on the page) that tell this test what a
person does without typing it:

- ``<!-- readme-test: make -n -->`` before a block: its ``make`` targets are checked with ``make -n`` (``make
  test`` is this very suite, run by CI; ``make run`` is ``slaflow run``, run by ``test_run.py``);
- ``<!-- readme-test: wait-port PORT -->`` / ``wait-url URL`` after a block: wait until a server it started in
  the background answers (a person waits for its first lines);
- ``<!-- readme-test: output -->`` before a ``text`` block: that block is exactly what the previous shell block
  prints on stdout.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
ANNOTATION = re.compile(r"<!-- readme-test: (.+?) -->")
WAIT_S = 120
SCRIPT_TIMEOUT_S = 420
README_PORTS = (9092, 6066, 6067)
"""The broker, the worker's web server and the sink's /metrics, as the README starts them."""

PRELUDE = f"""
set -euo pipefail
trap 'kill $(jobs -p) 2>/dev/null || true; wait' EXIT
readme_wait() {{  # readme_wait port N | readme_wait url URL: until it answers, at most {WAIT_S} s
  for _ in $(seq {WAIT_S * 2}); do
    if [ "$1" = port ]; then (exec 3<>/dev/tcp/127.0.0.1/"$2") 2>/dev/null && return 0
    else curl -sf -o /dev/null "$2" && return 0; fi
    sleep 0.5
  done
  echo "readme-test: $2 never answered" >&2; return 1
}}
"""


@dataclass
class Block:
    """A fenced block of the README: its language, its text, and the annotations before and after it."""

    language: str
    text: str
    line: int
    end: int
    """The line of its closing fence (0-based, as ``line``)."""
    before: list[str] = field(default_factory=list)
    after: list[str] = field(default_factory=list)


def blocks(text: str) -> list[Block]:
    """Every fenced block of ``text`` with its annotations, in order."""
    found: list[Block] = []
    pending: list[str] = []
    lines = text.splitlines()
    n = 0
    while n < len(lines):
        line = lines[n]
        note = ANNOTATION.fullmatch(line.strip())
        if note:
            if found and not pending and found[-1].end == n - 1:  # right below a block: about that block
                found[-1].after.append(note.group(1))
            else:
                pending.append(note.group(1))
        elif line.startswith("```"):
            start, language, body = n, line[3:].strip(), []
            n += 1
            while not lines[n].startswith("```"):
                body.append(lines[n])
                n += 1
            found.append(Block(language, "\n".join(body), start, n, before=pending))
            pending = []
        n += 1
    return found


def script(found: list[Block], outputs: Path) -> tuple[str, dict[int, str]]:
    """The README's shell blocks as one bash script; and, per block whose stdout is shown, the expected text."""
    parts = [PRELUDE]
    expected: dict[int, str] = {}
    for index, block in enumerate(found):
        if block.language != "sh":
            continue
        body = block.text
        if "make -n" in block.before:
            body = re.sub(r"^make (\w+)", rf"make -n -C {shlex.quote(str(ROOT))} \1", body, flags=re.MULTILINE)
        shown = next((b for b in found[index + 1 :] if b.language != "sh"), None)
        following = found[index + 1] if index + 1 < len(found) else None
        parts.append(f"echo '### README line {block.line + 1}' >&2")
        if following is not None and following is shown and "output" in following.before:
            expected[index] = following.text
            parts.append(f"{{\n{body}\n}} > {shlex.quote(str(outputs / f'{index}.out'))}")
        else:
            parts.append(body)
        for note in block.after:
            kind, _, where = note.partition(" ")
            assert kind in ("wait-port", "wait-url"), f"unknown annotation {note!r}"
            parts.append(f"readme_wait {kind.removeprefix('wait-')} {shlex.quote(where)}")
    return "\n".join(parts) + "\n", expected


def test_the_readme_is_a_guide_of_a_few_hundred_lines_with_its_reference_in_docs() -> None:
    text = README.read_text()
    assert 200 <= len(text.splitlines()) <= 450, len(text.splitlines())
    for link in re.findall(r"\]\((docs/[\w.]+)\)", text):
        assert (ROOT / link).is_file(), link
    headings = re.findall(r"^## (.+)$", text, re.MULTILINE)
    assert headings[:2] == ["Quick start", "Your first policy"]
    for needed in ("Feed your own events to a worker", "Watching alerts", "Configuration", "Troubleshooting"):
        assert needed in headings


@pytest.mark.timeout(SCRIPT_TIMEOUT_S + 60)
def test_every_command_of_the_readme_runs_and_shows_what_it_says(tmp_path: Path) -> None:
    found = blocks(README.read_text())
    assert sum(block.language == "sh" for block in found) >= 10
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    shell, expected = script(found, outputs)
    assert expected, "the README shows at least one command's output"
    for port in README_PORTS:  # the README's fixed ports: fail clearly if a process left behind holds one
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0, f"port {port} is in use: the README needs it free"
    work = tmp_path / "home"
    work.mkdir()
    (work / ".venv").symlink_to(ROOT / ".venv")  # `. .venv/bin/activate`, as in a clone that ran make setup
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "SLAFLOW_"))}
    with subprocess.Popen(
        ["bash", "-c", shell],
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: whatever the README starts is stopped with it
    ) as done:
        try:
            stdout, stderr = done.communicate(timeout=SCRIPT_TIMEOUT_S)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(done.pid, signal.SIGKILL)
    log = f"stdout:\n{stdout[-4000:]}\nstderr:\n{stderr[-6000:]}"
    assert done.returncode == 0, log
    for index, text in expected.items():
        got = (outputs / f"{index}.out").read_text()
        assert got.strip() == text.strip(), f"README block {index} shows:\n{text}\nbut the command printed:\n{got}"
    assert "slaflow produce: sent 1 event (1 to slaflow.case-events)" in stderr, log
    assert re.search(r"DEAD_LETTER +late: ", stdout), log  # the March events, set aside as late
    assert "slaflow sink: caught up:" in stderr and "HTML report: " in stdout, log
