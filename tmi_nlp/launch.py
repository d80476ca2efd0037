"""Runs under `accelerate launch` (or torchrun): each rank trains its own models, rank 0 the rest.

Rank 0 prepares (config, plan, tokenizer, token cache) and, once every model is done, attacks
and reports; rank r trains the models i with i % world == r. Ranks coordinate through files in
`<run>/launch/` only (no process group: nothing is all-reduced, and a shared folder is all that
several nodes need), and no two ranks write the same file. The launcher's variables are removed
from the environment, so that HF Trainer inside a rank does not start data-parallel training of
one model: here each model is trained whole by one rank (on GPU `LOCAL_RANK` of its node).
"""

import json
import os
import time
import traceback

from tmi_nlp.atomic import atomic_write_json
from tmi_nlp.config import Recipe
from tmi_nlp.stages.prepare import EXECUTION_FIELDS, prepare
from tmi_nlp.stages.report import report
from tmi_nlp.stages.train import train_models
from tmi_nlp.store import MODEL_STAGES, RunDir

LAUNCHER_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK", "GROUP_WORLD_SIZE",
                      "ROLE_RANK", "ROLE_WORLD_SIZE", "ROLE_NAME", "MASTER_ADDR", "MASTER_PORT",
                      "TORCHELASTIC_RESTART_COUNT", "TORCHELASTIC_MAX_RESTARTS", "TORCHELASTIC_USE_AGENT_STORE",
                      "ACCELERATE_USE_DEEPSPEED", "ACCELERATE_USE_FSDP")


class LaunchError(RuntimeError):
    """Another rank failed, or waiting for it timed out."""


def take_launch_context() -> tuple[int, int, str]:
    """(rank, world size, launch id) of a launched process, else (0, 1, ""); clears the launcher's variables.

    Call it before torch touches CUDA: a rank's GPU is chosen by restricting CUDA_VISIBLE_DEVICES.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, ""
    rank = int(os.environ["RANK"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    launch_id = ":".join(os.environ.get(name, "") for name in ("TORCHELASTIC_RUN_ID", "MASTER_ADDR", "MASTER_PORT"))
    for name in LAUNCHER_VARIABLES:
        os.environ.pop(name, None)
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    devices = visible.split(",") if visible else None
    if devices is None:
        try:
            import subprocess

            out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10).stdout
            devices = [str(i) for i in range(len(out.strip().splitlines()))] if out.strip() else []
        except (OSError, subprocess.SubprocessError):
            devices = []
    if devices:
        os.environ["CUDA_VISIBLE_DEVICES"] = devices[local % len(devices)]
    return rank, world, launch_id


def _wait(condition, failed, what: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        problem = failed()
        if problem:
            raise LaunchError(f"{what}: {problem}")
        if time.monotonic() > deadline:
            raise LaunchError(f"{what}: still waiting after {timeout_s:.0f} s")
        time.sleep(1.0)


def _computed(recipe: Recipe) -> dict:
    """The recipe without the fields that only say where or how it executes."""
    raw = recipe.to_dict()
    return {section: {k: v for k, v in values.items() if (section, k) not in EXECUTION_FIELDS}
            for section, values in raw.items()}


def run_launched(recipe: Recipe, rank: int, world: int, launch_id: str, progress: bool = True,
                 timeout_s: float = 7 * 24 * 3600) -> dict | None:
    """This rank's share of `run_all`; rank 0 returns the summary, the others None."""
    run = RunDir(recipe.run_dir)
    folder = run.root / "launch"

    def failure() -> str:
        for path in sorted(folder.glob("failed-rank*.json")) if folder.exists() else []:
            info = json.loads(path.read_text())
            if info.get("launch") == launch_id:
                return f"rank {info['rank']} failed: {info['error']}"
        return ""

    prepared = folder / "prepared.json"
    started = time.time()
    stamp = {"launch": launch_id, "world": world, "recipe": _computed(recipe)}

    def prepared_for_this_launch() -> bool:
        # A marker left by an earlier launch of another recipe (same port, say) must not count.
        if not prepared.exists():
            return False
        info = json.loads(prepared.read_text())
        return info.get("created", 0) >= started - 60 and {k: info.get(k) for k in stamp} == stamp

    try:
        if rank == 0:
            prepare(recipe)
            atomic_write_json(prepared, {**stamp, "created": time.time()})
        else:
            _wait(prepared_for_this_launch, failure, f"rank {rank} waiting for rank 0 to prepare {run.root}",
                  timeout_s)
        mine = [i for i in range(recipe.run.num_models) if i % world == rank]
        atomic_write_json(folder / f"rank{rank}.json", {"launch": launch_id, "pid": os.getpid(), "models": mine})
        train_models(recipe, models=mine, progress=progress and rank == 0, workers=1)
        if rank != 0:
            return None
        _wait(lambda: all(run.model_done(i, s) for i in range(recipe.run.num_models) for s in MODEL_STAGES),
              failure, "rank 0 waiting for the other ranks' models", timeout_s)
        return report(recipe)
    except LaunchError:
        raise
    except BaseException as err:
        atomic_write_json(folder / f"failed-rank{rank}.json",
                          {"launch": launch_id, "rank": rank, "error": f"{type(err).__name__}: {err}",
                           "traceback": traceback.format_exc()})
        raise
