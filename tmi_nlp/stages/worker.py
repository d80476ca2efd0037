"""A training worker: `python -m tmi_nlp.stages.worker RUN_FOLDER STAGES THREADS`.

Reads model indices from standard input, one a line, trains each (`train.train_one`) from what
the run folder holds, and answers one JSON line per model: its timings, or {"model", "error"}
after which it exits (the traceback of an unexpected error goes to standard error; a refused input or an
operating-system error, a full disk say, is its one line). The answers travel on a private
copy of standard output; everything else a library prints goes to standard error.
"""

import json
import os
import sys
import traceback

from tmi_nlp.atomic import DiskSpaceError
from tmi_nlp.config import RecipeError
from tmi_nlp.data.loading import DataError
from tmi_nlp.models.training import torch_threads
from tmi_nlp.resolve import resolve
from tmi_nlp.stages.train import train_one
from tmi_nlp.store import RunDir


def main(argv: list[str]) -> int:
    folder, stages, threads = argv[0], tuple(argv[1].split(",")), int(argv[2])
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    run = RunDir(folder)
    recipe = resolve(run.recipe())
    with torch_threads(threads):
        for line in sys.stdin:
            i = int(line)
            try:
                answer = train_one(run, recipe, i, stages)
            except Exception as err:
                expected = isinstance(err, (OSError, RecipeError, DataError, DiskSpaceError))
                if not expected:
                    traceback.print_exc()
                answers.write(json.dumps({"model": i, "error": f"{type(err).__name__}: {err}",
                                          "traceback": not expected}) + "\n")
                return 1
            answers.write(json.dumps(answer) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
