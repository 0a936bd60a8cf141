"""Benchmark the exchange envelope: pack and unpack throughput and peak memory on a large feed.

    .venv/bin/python bench/bench_envelope.py                 # 1 GiB, AES and SM4 suites
    .venv/bin/python bench/bench_envelope.py --size 256M --suite aes256gcm-x25519
    .venv/bin/python bench/bench_envelope.py --write-docs    # also update docs/performance.md

A synthetic CSV feed of ``--size`` bytes is written to disk, then each pack and each unpack runs in
a fresh subprocess that streams file to file, so the peak resident set (``ru_maxrss``) is that of
one operation, interpreter included; ``tracemalloc`` reports the peak of Python allocations on top.
Files are read from a warm page cache (the feed was just written), which is how intake meets a
feed it has just downloaded. Not a test: nothing under tests/ runs it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "performance.md"
SECTION = "## Exchange envelope"
DEFAULT_SUITES = ("aes256gcm-x25519", "sm4gcm-x25519")
TARGET_MB_S, TARGET_PEAK_MB = 500, 100


def parse_size(text: str) -> int:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMG]?)(i?B?)?", text.strip(), re.IGNORECASE)
    if not match:
        raise argparse.ArgumentTypeError(f"size {text!r}: use e.g. 1G, 256M, 1048576")
    scale = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[match.group(2).upper()]
    return int(float(match.group(1)) * scale)


def write_feed(path: Path, size: int) -> None:
    """A wages-like CSV of ``size`` bytes (synthetic IDs and amounts, nothing real)."""
    rows = "".join(
        f"W{i:08d},21011219{i % 90 + 10:02d}0101{i % 1000:03d}X,name{i % 977},2026-10,"
        f"employer {i % 131},91350100M000100Y43,{3000 + i % 5000}.50,{300 + i % 700}.00\n"
        for i in range(12_000)
    ).encode()
    block = (rows * (1 + (1 << 20) // len(rows)))[: 1 << 20]
    with open(path, "wb") as out:
        remaining = size
        while remaining:
            step = min(remaining, len(block))
            out.write(block[:step])
            remaining -= step


def _child(operation: str, src: str, dst: str, suite: str, chunk_size: int) -> None:
    """Run one operation and print its figures as JSON (invoked in a fresh interpreter)."""
    import resource
    import tracemalloc

    sys.path.insert(0, str(ROOT))
    from connectors import envelope, keys

    kem = suite.split("-", 1)[1]
    centre, signer = keys.insecure_test_recipient_key(kem), keys.insecure_test_signing_key("bench")
    tracemalloc.start()
    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    with open(src, "rb") as source, open(dst, "wb") as dest:
        if operation == "verify":
            envelope.verify(source, keyring=keys.CentreKeyring([centre]),
                            trusted=keys.PartnerDirectory([signer.public()]))
        elif operation == "pack":
            draft = envelope.Manifest(partner="bench", feed_kind="wages", period="2026-10",
                                      sequence=1, row_count=0, schema_version="1.0")
            envelope.pack(source, dest, manifest=draft, sender=signer,
                          recipient=centre.public(), suite=suite, chunk_size=chunk_size)
        else:
            envelope.unpack(source, dest, keyring=keys.CentreKeyring([centre]),
                            trusted=keys.PartnerDirectory([signer.public()]))
    seconds = time.perf_counter() - started
    _, traced_peak = tracemalloc.get_traced_memory()
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    figures = {"seconds": seconds, "cpu_seconds": cpu, "rss_mb": after.ru_maxrss / 1024,
               "traced_mb": traced_peak / 2**20}
    print(json.dumps(figures))


def run_one(operation: str, src: Path, dst: Path, suite: str, chunk_size: int) -> dict:
    command = [sys.executable, __file__, "_child", operation, str(src), str(dst), suite,
               str(chunk_size)]
    os.sync()  # start each run with no dirty pages left over from the one before
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    plain = src if operation == "pack" else dst.with_name("out.csv")
    figures["mb_s"] = plain.stat().st_size / 2**20 / figures["seconds"]
    figures["cpu_mb_s"] = plain.stat().st_size / 2**20 / figures["cpu_seconds"]
    return figures


def best_of(repeat: int, *args: object) -> dict:
    """The fastest of ``repeat`` runs: the machine is shared, and noise only ever slows a run."""
    runs = [run_one(*args) for _ in range(repeat)]  # type: ignore[arg-type]
    return min(runs, key=lambda figures: figures["seconds"])


def bench(size: int, suites: list[str], chunk_size: int, workdir: Path,
          repeat: int = 1) -> list[dict]:
    feed, packed, unpacked = workdir / "feed.csv", workdir / "feed.hedui", workdir / "out.csv"
    write_feed(feed, size)
    results = []
    for suite in suites:
        steps = (("pack", feed, packed), ("unpack", packed, unpacked),
                 ("verify", packed, workdir / "nothing"))
        for operation, src, dst in steps:
            figures = best_of(repeat, operation, src, dst, suite, chunk_size)
            results.append({"suite": suite, "operation": operation, **figures})
            print(f"{suite:<26} {operation:<7} {figures['mb_s']:8.0f} MiB/s  "
                  f"({figures['cpu_mb_s']:5.0f} per CPU-s)  "
                  f"peak RSS {figures['rss_mb']:6.1f} MiB  traced {figures['traced_mb']:5.1f} MiB",
                  flush=True)
        if not _same(feed, unpacked):
            raise SystemExit(f"{suite}: the unpacked file differs from the feed")
    return results


def _same(a: Path, b: Path) -> bool:
    if a.stat().st_size != b.stat().st_size:
        return False
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while block := fa.read(1 << 24):
            if block != fb.read(len(block)):
                return False
    return True


def _stamp() -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())


def markdown(results: list[dict], size: int, chunk_size: int, command: str, repeat: int,
             load: str) -> str:
    lines = [
        SECTION, "",
        f"Command: `{command}`  ",
        f"Feed: {size / 2**30:.2f} GiB synthetic CSV, streamed file to file, chunk "
        f"{chunk_size >> 10} KiB, warm page cache; each operation in a fresh process, best of "
        f"{repeat} runs; load average before the run {load}.  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, measured {_stamp()}.",
        "",
        "| suite | operation | MiB/s (wall) | MiB per CPU-second | peak RSS (MiB) | peak Python "
        "allocations (MiB) |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(f"| {r['suite']} | {r['operation']} | {r['mb_s']:.0f} | {r['cpu_mb_s']:.0f} "
                     f"| {r['rss_mb']:.1f} | {r['traced_mb']:.1f} |")
    aes = {r["operation"]: r for r in results if r["suite"].startswith("aes")}
    lines += ["", *_notes(aes), ""]
    return "\n".join(lines)


def _notes(aes: dict[str, dict]) -> list[str]:
    verdict = ""
    if aes:
        slowest = min(r["mb_s"] for r in aes.values()) * 2**20 / 1e6
        peak = max(r["rss_mb"] for r in aes.values()) * 2**20 / 1e6
        met = slowest >= TARGET_MB_S and peak < TARGET_PEAK_MB
        verdict = (f" In this run the slowest AES operation did {slowest:.0f} MB/s, with a peak of "
                   f"{peak:.0f} MB: {'met' if met else 'NOT met'}.")
    return [
        f"- Target (issue 3): the AES path at {TARGET_MB_S} MB/s or better, with peak memory under "
        f"{TARGET_PEAK_MB} MB.{verdict}",
        "- *verify* is *unpack* without output: every check, nothing written.",
        "- Pack reads the feed twice. The first pass computes the digest, because the signed "
        "header carries it; the second encrypts. Unpack reads once and checks the digest as it "
        "goes. On a worker thread, hashing and writing overlap with reading and the AEAD.",
        "- Memory is O(chunk): a read buffer and at most three queued chunks. Peak RSS is mostly "
        "the interpreter and `cryptography` (about 30 MiB).",
        "- The two cores are shared with other sessions, so wall-clock figures move with their "
        "load. MiB per CPU-second is the steadier figure. SHA-256 (about 1.7 GB/s here) and "
        "writing fresh page-cache pages dominate the AES path; AES-GCM itself runs at about "
        "8 GB/s.",
        "- SM4-GCM (about 120 MB/s) and SM3 (about 300 MB/s) have no hardware acceleration in "
        "OpenSSL here. The national suite is CPU-bound, and pack pays for both passes.",
    ]


def update_doc(section: str) -> None:
    """Replace our section in docs/performance.md (others own the other sections)."""
    text = DOC.read_text(encoding="utf-8") if DOC.exists() else "# Performance\n\n"
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    DOC.write_text(text, encoding="utf-8")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_child":
        _child(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], int(sys.argv[6]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=parse_size, default=1 << 30, help="feed size, e.g. 1G")
    parser.add_argument("--suite", action="append", help="suite(s); default AES and SM4")
    parser.add_argument("--chunk-size", type=parse_size, default=1 << 20)
    parser.add_argument("--workdir", type=Path, help="scratch directory (default: a temp dir)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure; best is kept")
    parser.add_argument("--write-docs", action="store_true", help="update docs/performance.md")
    args = parser.parse_args()
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    workdir = Path(tempfile.mkdtemp(prefix="bench-envelope-", dir=args.workdir))
    try:
        results = bench(args.size, args.suite or list(DEFAULT_SUITES), args.chunk_size, workdir,
                        args.repeat)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if args.write_docs:
        command = "python bench/bench_envelope.py " + " ".join(sys.argv[1:])
        update_doc(markdown(results, args.size, args.chunk_size, command.strip(), args.repeat,
                            load))
        print(f"updated {DOC.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
