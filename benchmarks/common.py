"""Helpers shared by the benchmark scripts: timing, peak memory of a child process, matmul peak."""

import json
import subprocess
import sys
import time

import torch

from tmi_nlp.cost import cpu_name  # noqa: F401 (the scripts import it from here)


def matmul_peak_gflops(threads: int, dtype: torch.dtype = torch.float32, size: int = 1024,
                       seconds: float = 2.0) -> float:
    """Measured matmul throughput (GFLOP/s) of this CPU at `threads` threads: the MFU denominator."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    for _ in range(3):
        a @ b
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        count += 1
    elapsed = time.perf_counter() - start
    torch.set_num_threads(before)
    return 2 * size**3 * count / elapsed / 1e9


# The child's own peak, read at exit: a child's ru_maxrss (resource or wait4) keeps the high-water mark of the pages
# it shared with this process before its exec (about 220 MiB once torch is imported here), VmHWM starts at the exec.
PEAK_HOOK = ("import atexit, sys\natexit.register(lambda: print('VmHWM', open('/proc/self/status').read()"
             ".split('VmHWM:')[1].split()[0], file=sys.stderr))\n")


def run_child(code: str) -> tuple[dict, float]:
    """Run Python `code` (which prints one JSON line last) in a fresh process: (its result, its peak RSS in MiB)."""
    out = subprocess.run([sys.executable, "-c", PEAK_HOOK + code], check=True, capture_output=True, text=True)
    peak_kib = [line.split()[1] for line in out.stderr.splitlines() if line.startswith("VmHWM ")]
    return json.loads(out.stdout.strip().splitlines()[-1]), int(peak_kib[-1]) / 1024


def run_children(code: str, cfg: dict, processes: int = 1) -> list[dict]:
    """Run Python `code` in `processes` fresh processes at once, with the JSON of `cfg` as sys.argv[1]; each prints
    one JSON line last, returned in order."""
    procs = [subprocess.Popen([sys.executable, "-c", code, json.dumps(cfg)], stdout=subprocess.PIPE, text=True)
             for _ in range(processes)]
    return [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]


def table(rows: list[list], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(h).ljust(w) for h, w in zip(header, widths, strict=True))]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)
