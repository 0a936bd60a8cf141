"""CPU seconds of `hedui` start-up: `hedui --help` and the check of a 10-row batch file.

Each command runs as a whole process ``--runs`` times; the CPU time is the child's user + system
time from ``getrusage`` (what the process itself used, whatever else the machine is doing), and
the minimum and median are printed with the command. Run: ``make bench-cli``.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HEDUI = str(Path(sys.executable).with_name("hedui"))


def _cpu_of(command: list[str]) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(command, check=True, capture_output=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _small_batch(folder: Path) -> Path:
    subprocess.run([HEDUI, "generate", "--households", "3", "--out", str(folder)], check=True,
                   capture_output=True)
    return folder / "roster.csv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        batch = _small_batch(Path(tmp) / "district")
        rows = len(batch.read_text("utf-8").splitlines()) - 1
        for label, command in (("hedui --help", [HEDUI, "--help"]),
                               (f"hedui roster check ({rows} rows)",
                                [HEDUI, "roster", "check", str(batch)])):
            times = [_cpu_of(command) for _ in range(args.runs)]
            print(f"{label:<34} CPU s: min {min(times):.2f}  median "
                  f"{statistics.median(times):.2f}  ({args.runs} runs)")


if __name__ == "__main__":
    main()
