"""Push a zoo (a run folder) to the Hugging Face Hub and pull one back to attack with.

A zoo is the run folder itself: config.yaml, plan/, tokenizer/, models/<i>/{pretrained,finetuned,
queries.npy,signals}, attacks/ and report/, plus a model card (README.md) with the recipe, the
attack table and the sha256 of the membership plan, so that anyone who pulls it can check that
the plan they attack with is the one the zoo was trained on, and a manifest of every file's size and
sha256, checked file by file before a pulled zoo becomes a run folder. Pulled, it is a run folder again:
`tmi-nlp report DEST`, or new attacks, work on it with no training and without the raw data
(the raw in-memory inputs of the Python API are not shipped: nothing after prepare reads them).

The token comes from `token=`, the `HF_TOKEN` environment variable or `huggingface-cli login`
(huggingface_hub's usual order); tmi-nlp never prints it or writes it anywhere.
`HF_ENDPOINT` points huggingface_hub at another server (the tests use a loopback one).
"""

import hashlib
import json
import shutil
import tempfile
from pathlib import Path

from tmi_nlp.store import RunDir, file_record
from tmi_nlp.tables import attack_table

# Not part of a zoo: in-flight temporaries, launch coordination, the writer lock, the user's raw in-memory inputs.
EXCLUDED = (".*.tmp-*", "**/.*.tmp-*", "launch/*", ".writer.lock", "inputs/*")
ZOO_MANIFEST = "zoo_manifest.json"  # in the repository: every uploaded file's size and sha256


def plan_sha256(run: RunDir) -> str:
    """sha256 over the membership plan: keep.npy, challenge.npy and pool.json, in that order."""
    digest = hashlib.sha256()
    for name in ("keep.npy", "challenge.npy", "pool.json"):
        digest.update((run.plan / name).read_bytes())
    return digest.hexdigest()


def model_card(run: RunDir) -> str:
    recipe = run.stored_config()
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
    """Upload the run folder, its manifest (every file's size and sha256) and its model card to a model
    repository; returns the commit URL."""
    from huggingface_hub import CommitOperationAdd, HfApi

    run = RunDir(run_dir)
    if not run.prepared:
        raise FileNotFoundError(f"{run.root}: expected a prepared run folder (with {run.fingerprint.name})")
    run.refuse_outside_links()  # before anything leaves the machine
    files = [path for path in sorted(run.root.rglob("*")) if path.is_file()
             and not any(path.relative_to(run.root).match(pattern) for pattern in EXCLUDED)]
    manifest = {path.relative_to(run.root).as_posix(): file_record(path) for path in files}
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    operations = [CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=model_card(run).encode()),
                  CommitOperationAdd(path_in_repo=ZOO_MANIFEST,
                                     path_or_fileobj=json.dumps(manifest, indent=1).encode())]
    operations += [CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(run.root / name)) for name in manifest]
    info = api.create_commit(repo_id, operations=operations, commit_message=f"tmi-nlp zoo {run.root.name}",
                             revision=revision)
    return info.commit_url


class ZooError(ValueError):
    """A pulled zoo does not match its manifest or model card; nothing was kept."""


def verify_zoo(folder: Path, repo_id: str) -> None:
    """Every file of the manifest present with its size and sha256, no file outside it (the card and the manifest
    aside), no link out of the folder, and the plan's hash as the card states."""
    if not (folder / ZOO_MANIFEST).exists():
        raise ZooError(f"{repo_id}: no {ZOO_MANIFEST}; expected a zoo pushed with one (every file's size and "
                       f"sha256), so that what is pulled can be checked")
    manifest = json.loads((folder / ZOO_MANIFEST).read_text())
    RunDir(folder).refuse_outside_links()
    for name, entry in manifest.items():
        path = folder / name
        if not path.is_file():
            raise ZooError(f"{repo_id}: {name} is missing; the manifest lists it")
        record = file_record(path)
        if record != entry:
            what = (f"size {record['size']}, expected {entry['size']}" if record["size"] != entry["size"] else
                    f"sha256 {record['sha256'][:16]}..., expected {str(entry.get('sha256'))[:16]}...")
            raise ZooError(f"{repo_id}: {name} does not match the manifest ({what})")
    extra = [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()
             and p.relative_to(folder).parts[0] not in ("README.md", ZOO_MANIFEST)
             and p.relative_to(folder).as_posix() not in manifest]
    if extra:
        raise ZooError(f"{repo_id}: {extra[0]} (and {len(extra) - 1} more) are not in the manifest")
    card = (folder / "README.md").read_text() if (folder / "README.md").exists() else ""
    if "Membership plan sha256: `" not in card:
        raise ZooError(f"{repo_id}: the model card states no membership plan sha256")
    expected = card.split("Membership plan sha256: `", 1)[1].split("`", 1)[0]
    if expected != plan_sha256(RunDir(folder)):
        raise ZooError(f"{repo_id}: plan/ does not match the model card's membership plan sha256 {expected}")


def pull_zoo(repo_id: str, destination: str | Path, token: str | None = None, revision: str | None = None) -> Path:
    """Download a zoo into a new run folder `destination`, checked file by file before it appears there.

    The download goes to a temporary sibling folder, is verified against the zoo's manifest and model card
    (`verify_zoo`), and only then renamed to `destination`; a zoo that fails leaves nothing behind.
    """
    from huggingface_hub import snapshot_download

    destination = Path(destination)
    if destination.exists() and any(destination.iterdir()):
        raise ZooError(f"{destination}: exists and is not empty; expected a new folder to pull into")
    destination.parent.mkdir(parents=True, exist_ok=True)
    # A fresh name: a folder left by another pull (or anything else) is never touched.
    tmp = Path(tempfile.mkdtemp(prefix=f".{destination.name}.pulling-", dir=destination.parent))
    try:
        try:
            snapshot_download(repo_id, local_dir=tmp, token=token, revision=revision)
        except Exception as err:  # huggingface_hub raises many types: a bad file name, HTTP, a lost connection
            raise ZooError(f"{repo_id}: the download failed ({type(err).__name__}: "
                           f"{str(err).splitlines()[0] if str(err) else ''}); nothing was kept") from err
        # huggingface_hub's own download records; a zoo file under .cache/ would escape the manifest check.
        shutil.rmtree(tmp / ".cache", ignore_errors=True)
        verify_zoo(tmp, repo_id)
        if destination.exists():
            destination.rmdir()
        tmp.rename(destination)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return destination
