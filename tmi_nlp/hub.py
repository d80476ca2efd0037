"""Push a zoo (a run folder) to the Hugging Face Hub and pull one back to attack with.

A zoo is the run folder itself: config.yaml, plan/, tokenizer/, models/<i>/{pretrained,finetuned,
queries.npy,signals}, attacks/ and report/, plus a model card (README.md) with the recipe, the
attack table and the sha256 of the membership plan, so that anyone who pulls it can check that
the plan they attack with is the one the zoo was trained on. Pulled, it is a run folder again:
`tmi-nlp report DEST`, or new attacks, work on it with no training and without the raw data
(the raw in-memory inputs of the Python API are not shipped: nothing after prepare reads them).

The token comes from `token=`, the `HF_TOKEN` environment variable or `huggingface-cli login`
(huggingface_hub's usual order); tmi-nlp never prints it or writes it anywhere.
`HF_ENDPOINT` points huggingface_hub at another server (the tests use a loopback one).
"""

import hashlib
import json
from pathlib import Path

import yaml

from tmi_nlp.store import RunDir
from tmi_nlp.tables import attack_table

# Not part of a zoo: in-flight temporaries, launch coordination, the writer lock, the user's raw in-memory inputs.
EXCLUDED = (".*.tmp-*", "**/.*.tmp-*", "launch/*", ".writer.lock", "inputs/*")


def plan_sha256(run: RunDir) -> str:
    """sha256 over the membership plan: keep.npy, challenge.npy and pool.json, in that order."""
    digest = hashlib.sha256()
    for name in ("keep.npy", "challenge.npy", "pool.json"):
        digest.update((run.plan / name).read_bytes())
    return digest.hexdigest()


def model_card(run: RunDir) -> str:
    recipe = yaml.safe_load(run.config.read_text())
    lines = ["---", "library_name: tmi-nlp", "tags: [membership-inference, privacy, tmi, shadow-models]", "---", "",
             f"# tmi-nlp zoo: {run.root.name}", "",
             f"{recipe['run']['num_models']} BERT masked LMs pretrained on random halves of a pool of "
             f"{recipe['data']['pool_size']} texts, finetuned by `{recipe['finetune']['method']}`, with their "
             f"query tensors, for membership inference on pretraining data (TMI, Abascal et al., PETS 2024).", "",
             f"Membership plan sha256: `{plan_sha256(run)}` (keep.npy, challenge.npy, pool.json).", "",
             "The pool texts and the membership plan are in `plan/`: this zoo says which text each model "
             "was pretrained on. Do not publish a zoo built from private text.", ""]
    summary = run.report / "metrics.json"
    if summary.exists():
        attacks = json.loads(summary.read_text())["attacks"]
        lines += [attack_table(attacks, "markdown", keys=("auc", "tpr@0.001", "tpr@0.01")), ""]
    lines += ["## Recipe", "", "```yaml", run.config.read_text().rstrip(), "```", "",
              "Pull and report: `tmi-nlp pull REPO DEST && tmi-nlp report DEST`.", ""]
    return "\n".join(lines)


def push_zoo(run_dir: str | Path, repo_id: str, token: str | None = None, private: bool = True,
             revision: str | None = None) -> str:
    """Upload the run folder and its model card to a model repository; returns the commit URL."""
    from huggingface_hub import CommitOperationAdd, HfApi

    run = RunDir(run_dir)
    if not run.prepared:
        raise FileNotFoundError(f"{run.root}: expected a prepared run folder (with {run.fingerprint.name})")
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    operations = [CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=model_card(run).encode())]
    for path in sorted(run.root.rglob("*")):
        relative = path.relative_to(run.root)
        if path.is_file() and not any(relative.match(pattern) for pattern in EXCLUDED):
            operations.append(CommitOperationAdd(path_in_repo=relative.as_posix(), path_or_fileobj=str(path)))
    info = api.create_commit(repo_id, operations=operations, commit_message=f"tmi-nlp zoo {run.root.name}",
                             revision=revision)
    return info.commit_url


def pull_zoo(repo_id: str, destination: str | Path, token: str | None = None, revision: str | None = None) -> Path:
    """Download a zoo into `destination` (a run folder) and check its plan against the model card's hash."""
    from huggingface_hub import snapshot_download

    destination = Path(destination)
    snapshot_download(repo_id, local_dir=destination, token=token, revision=revision)
    card = (destination / "README.md").read_text() if (destination / "README.md").exists() else ""
    run = RunDir(destination)
    expected = card.split("Membership plan sha256: `", 1)[1].split("`", 1)[0] if "plan sha256" in card else None
    if expected and expected != plan_sha256(run):
        raise ValueError(f"{repo_id}: plan/ does not match the model card's membership plan sha256 {expected}")
    return destination
