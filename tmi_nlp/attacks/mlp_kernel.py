"""The fused C kernel that trains many small MLPs at once (`mlp_kernel.c`), built on first use.

It is compiled with the machine's C compiler (`$CC`, split as a shell would, so `ccache gcc` works;
else `cc` or `gcc`) into a cache folder (`$TMI_NLP_CACHE`, else `~/.cache/tmi_nlp`), once per source,
compiler, flags and CPU architecture, and loaded with ctypes. Concurrent first uses (several
ranks, several test workers) build under a file lock, each into a temporary file of its own,
renamed into place. With OpenMP where the compiler has it; otherwise the same kernel runs its
problems one after another. Without a compiler `load()` returns None and the metaclassifiers
train with the batched torch code (same algorithm, slower; `attack.backend` chooses).
"""

import ctypes
import hashlib
import os
import platform
import shlex
import shutil
import subprocess
import uuid
import warnings
from functools import cache
from pathlib import Path

import numpy as np

from tmi_nlp.atomic import file_lock

SOURCE = Path(__file__).with_name("mlp_kernel.c")
# Reassociation lets the compiler vectorise the sums over hidden units. Not -ffast-math: linked into a
# shared library it sets flush-to-zero for the whole process (crtfastmath), changing torch's and
# numpy's arithmetic.
FLAGS = ("-O3", "-fno-math-errno", "-fno-trapping-math", "-fassociative-math", "-fno-signed-zeros",
         "-freciprocal-math", "-ffp-contract=fast", "-shared", "-fPIC")
OPENMP = ("-fopenmp",)


def _arch_flags() -> tuple[str, ...]:
    """AVX2 + FMA where the CPU has them (not -march=native: the cache may be shared by other CPUs)."""
    if platform.machine() not in ("x86_64", "AMD64"):
        return ()
    try:
        cpu_flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return ()
    return ("-mavx2", "-mfma") if {"avx2", "fma"} <= cpu_flags else ()


def cache_dir() -> Path:
    if os.environ.get("TMI_NLP_CACHE"):
        return Path(os.environ["TMI_NLP_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tmi_nlp"


def compiler_command() -> list[str] | None:
    """The C compiler as an argument list: `$CC` split like a shell would, else cc or gcc; None if none."""
    if os.environ.get("CC"):
        return shlex.split(os.environ["CC"])
    found = shutil.which("cc") or shutil.which("gcc")
    return [found] if found else None


def library_path(compiler: list[str], flags: tuple[str, ...]) -> Path:
    """Where the library built from this source, compiler and flags for this CPU architecture and OS is cached."""
    key_text = "\0".join((*compiler, *flags, platform.machine(), platform.system())).encode()
    return cache_dir() / f"mlp_kernel-{hashlib.sha256(SOURCE.read_bytes() + key_text).hexdigest()[:16]}.so"


def _build(compiler: list[str], flags: tuple[str, ...]) -> Path:
    """The kernel library for this compiler and flags: built once under a lock, then read from the cache."""
    lib = library_path(compiler, flags)
    if lib.exists():
        return lib
    lib.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(lib.with_name(f".{lib.name}.lock")):
        if not lib.exists():  # another process may have built it while this one waited
            tmp = lib.with_name(f".{lib.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
            try:
                subprocess.run([*compiler, *flags, str(SOURCE), "-o", str(tmp), "-lm"], check=True,
                               capture_output=True, text=True)
                os.replace(tmp, lib)
            finally:
                tmp.unlink(missing_ok=True)
    return lib


@cache
def load() -> ctypes.CDLL | None:
    """The kernel library (with OpenMP where the compiler has it), or None where it cannot be built."""
    compiler = compiler_command()
    if compiler is None:
        warnings.warn("tmi-nlp: no C compiler (cc, gcc or $CC): the metaclassifiers train with the slower "
                      "torch code", stacklevel=2)
        return None
    errors = []
    for flags in (FLAGS + OPENMP + _arch_flags(), FLAGS + _arch_flags()):
        try:
            lib = ctypes.CDLL(str(_build(compiler, flags)))
            break
        except (subprocess.CalledProcessError, OSError) as err:
            errors.append(err.stderr if isinstance(err, subprocess.CalledProcessError) else str(err))
    else:
        warnings.warn(f"tmi-nlp: building {SOURCE.name} failed ({errors[-1]}); the metaclassifiers train with the "
                      f"slower torch code", stacklevel=2)
        return None
    i64, f32 = ctypes.c_int64, ctypes.c_float

    def array(dtype):
        return np.ctypeslib.ndpointer(dtype=dtype, flags="C_CONTIGUOUS")

    lib.tmi_train_mlps.restype = ctypes.c_int
    lib.tmi_train_mlps.argtypes = [i64, i64, i64, i64, i64, i64, array(np.float32), array(np.uint8),
                                   array(np.float32), array(np.int64), array(np.float32), f32, ctypes.c_int32,
                                   ctypes.c_uint64, ctypes.c_int32, array(np.float32), array(np.float32),
                                   array(np.float32), array(np.float32)]
    return lib


def train_mlps(lib: ctypes.CDLL, x: np.ndarray, y: np.ndarray, class_weights: np.ndarray, perms: np.ndarray,
               lrs: np.ndarray, weight_decay: float, batch_size: int, drop_threshold: int, seed: int, threads: int,
               params: list[np.ndarray]) -> list[np.ndarray]:
    """Train in place: x [B, n, d], y [B, n] bool, class_weights [B, 2], perms [epochs, n], lrs [epochs];
    params (W1 [B, d, H], b1 [B, H], W2 [B, H, 2], b2 [B, 2]) -> the trained weights, same shapes."""
    num_problems, n, d = x.shape
    hidden = params[1].shape[1]
    w1, b1, b2 = (np.ascontiguousarray(p, dtype=np.float32) for p in (params[0], params[1], params[3]))
    w2t = np.ascontiguousarray(params[2].transpose(0, 2, 1), dtype=np.float32)
    status = lib.tmi_train_mlps(num_problems, n, d, hidden, perms.shape[0], batch_size,
                                np.ascontiguousarray(x, dtype=np.float32), np.ascontiguousarray(y, dtype=np.uint8),
                                np.ascontiguousarray(class_weights, dtype=np.float32),
                                np.ascontiguousarray(perms, dtype=np.int64),
                                np.ascontiguousarray(lrs, dtype=np.float32), weight_decay, drop_threshold,
                                seed, threads, w1, b1, w2t, b2)
    if status != 0:
        raise MemoryError(f"{SOURCE.name}: could not allocate the per-thread buffers ({threads} threads, {n} examples "
                          f"of {d} features)")
    return [w1, b1, np.ascontiguousarray(w2t.transpose(0, 2, 1)), b2]
