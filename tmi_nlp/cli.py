"""`tmi-nlp`: one entry point, a subcommand per stage.

    tmi-nlp run RECIPE.yaml [--set section.key=value ...]   every stage, skipping finished work
    tmi-nlp demo [--set ...]                                the default recipe (built-in data)
    tmi-nlp base RECIPE.yaml                                train (once) the public base encoder of base.corpus
    tmi-nlp prepare|pretrain|finetune|attack|report RECIPE.yaml|RUN_FOLDER
    tmi-nlp attack RUN_FOLDER --victims OTHER_RUN           this run's models attack another run's
    tmi-nlp dataset RUN_FOLDER [--texts FILE [--reference FILE [--target MODEL]]]
                                                            was this set of texts used? a p-value per victim,
                                                            or for a model tmi-nlp did not train
                                                            (without --texts: the set test's power on the run)
    tmi-nlp compare RUN_FOLDER... [--attacks a,b] [--output DIR]  a table and overlaid ROC across runs
                                                            (or RUN/victims/OTHER result folders)
    tmi-nlp push RUN_FOLDER REPO_ID | tmi-nlp pull REPO_ID DEST   share a zoo on the Hugging Face Hub
    tmi-nlp check RECIPE.yaml                               validate the recipe and data only
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

from tmi_nlp import hub
from tmi_nlp.atomic import DiskSpaceError, RunLocked, writer_lock
from tmi_nlp.config import Recipe, RecipeError, apply_overrides, load_recipe, recipe_from_dict
from tmi_nlp.data.loading import DataError
from tmi_nlp.launch import LaunchError, run_launched, take_launch_context
from tmi_nlp.report import dataset_table, summary_table
from tmi_nlp.resolve import resolve
from tmi_nlp.stages import attack, prepare, report, run_all, train
from tmi_nlp.stages.base import base_info, build_base
from tmi_nlp.stages.compare import compare
from tmi_nlp.stages.dataset import dataset_power, dataset_test, target_set_test
from tmi_nlp.stages.target import attack_target, load_target
from tmi_nlp.stages.train import WorkerError
from tmi_nlp.stages.victims import attack_victims
from tmi_nlp.store import PREPARED, RunDir

STAGES = ("base", "prepare", "pretrain", "finetune", "attack", "dataset", "report", "run", "check")


def _recipe(args: argparse.Namespace) -> Recipe:
    """The recipe the command names (the demo's, a YAML file's, or a run folder's config.yaml), resolved."""
    if args.command == "demo":
        raw = Recipe().to_dict()
    elif Path(args.recipe).is_dir():
        raw = RunDir(args.recipe).recipe().to_dict()
    else:
        return resolve(load_recipe(args.recipe, args.set))
    return resolve(recipe_from_dict(apply_overrides(raw, args.set)))


def _print_summary(recipe: Recipe, summary: dict, seconds: float) -> None:
    print(f"\nrun {recipe.run_dir}  ({recipe.run.num_models} models, {recipe.run.num_points} points, "
          f"A={recipe.query.num_queries} {recipe.query.augmentation} queries, "
          f"{recipe.finetune.method} finetuning; {seconds:.0f} s)")
    p = recipe.pretrain
    if recipe.has_base:
        base = f"the public encoder {recipe.base.checkpoint}" if recipe.base.checkpoint else "a public base encoder"
        print(f"regime: {base}, continued on each model's private half for {p.epochs:g} passes "
              f"({p.private_share:.0%} of what it saw; the rest public text), then finetuned")
    else:
        print(f"regime: encoders pretrained from scratch for {p.epochs:g} epochs on about {recipe.data.pool_size // 2} "
              f"texts each; they memorise their pool, so this is a ceiling, not a released model (the realistic "
              f"setting: base.corpus, as in recipes/real/continued-*.yaml)")
    print(summary_table(summary["attacks"], summary["victim_accuracy"], summary.get("reference_accuracy"),
                        summary.get("warnings")))
    if summary.get("dataset", {}).get("sizes"):
        print(dataset_table(summary["dataset"]))
    if "epsilon" in summary:
        print(f"DP-SGD: epsilon spent {summary['epsilon']['max']:.2f} at delta {summary['delta']:g} "
              f"(target {recipe.finetune.options['dp']['epsilon']:g})")
    folder = recipe.run_dir / "report"
    print(f"report: {folder / 'report.html'}   metrics: {folder / 'metrics.json'}")


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"--fpr = {text!r}: expected a number in (0, 1)")
    return value


def _print_base(recipe: Recipe) -> None:
    folder = build_base(recipe)
    info = base_info(folder)
    if "checkpoint" in info:
        loss = info["heldout_mlm_loss"]
        print(f"base encoder: {folder}\n  {info['parameters']:,} parameters from {info['checkpoint']} (weights sha256 "
              f"{info['checkpoint_sha256'][:12]}...); built here: {len(info['built_weights'])} tensors "
              f"(the masked-LM head where it had none)" + (f"; held-out masked-LM loss {loss:.3f} on "
                                                           f"{info['heldout_texts']} texts" if loss else ""))
        return
    print(f"base encoder: {folder}\n  {info['parameters']:,} parameters, {info['tokens_seen']:,} tokens seen "
          f"({info['train_texts']} texts x {recipe.base.epochs:g} epochs) in {info['seconds']:.0f} s "
          f"({info['tokens_per_s']:,.0f} tokens/s)\n  held-out masked-LM loss {info['heldout_mlm_loss']:.3f} "
          f"on {info['heldout_texts']} texts")


def _check(recipe: Recipe, name: str) -> None:
    """Validate the recipe and its data without writing; compare the data with a prepared run folder's."""
    fingerprint = prepare.load_data(recipe).fingerprint
    run = RunDir(recipe.run_dir)
    if run.prepared:
        prepare.check_fingerprint(run, fingerprint)
        print(f"recipe ok: {name}; the data is the data {run.root} was prepared with")
    else:
        print(f"recipe ok: {name}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tmi-nlp", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run the default recipe on the built-in synthetic data")
    demo.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    for stage in STAGES:
        p = sub.add_parser(stage, help=f"the {stage} stage" if stage not in ("run", "check") else None)
        p.add_argument("recipe", help="YAML recipe, or a run folder (its config.yaml)")
        p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                       help="override a recipe field (value parsed as YAML)")
        if stage == "attack":
            p.add_argument("--target", help="attack this finetuned classifier (local folder or Hub id) instead: "
                                            "score the run's challenge points (data.challenge) against it")
            p.add_argument("--fpr", type=_rate, default=0.01, help="false-positive rate of the decisions, in (0, 1)")
            p.add_argument("--name", default="target", help="results go to RUN/targets/NAME/")
            p.add_argument("--victims", help="attack this other run's models with this run's as shadows (separate "
                                             "roles; e.g. partial knowledge): results go to RUN/victims/<its name>/")
        if stage == "dataset":
            p.add_argument("--texts", help="file of candidate texts, one per line (challenge texts of the run): "
                                           "test the set against every victim")
            p.add_argument("--reference", help="file of texts known unused, one per line (challenge texts of the "
                                               "run, from the same distribution): test the set against them "
                                               "(two-sample) instead of against the other models alone")
            p.add_argument("--target", help="test the set against this finetuned classifier (local folder or Hub "
                                            "id) instead of the run's victims; needs --texts and --reference")
            p.add_argument("--name", default="target", help="with --target: its scores go to RUN/targets/NAME/")
    comparison = sub.add_parser("compare", help="a table and an overlaid ROC across finished runs")
    comparison.add_argument("runs", nargs="+", help="run folders")
    comparison.add_argument("--attacks", default="mlp,shared_centred,lira_online,mlm_loss_lira",
                         help="comma-separated attack names")
    comparison.add_argument("--output", default="runs/compare", help="folder for compare.md and compare.png")
    push = sub.add_parser("push", help="upload a run folder (a zoo) to the Hugging Face Hub")
    push.add_argument("run", help="run folder")
    push.add_argument("repo_id", help="model repository, e.g. you/my-zoo")
    push.add_argument("--public", action="store_true", help="create the repository public (default: private)")
    pull = sub.add_parser("pull", help="download a zoo from the Hub into a run folder")
    pull.add_argument("repo_id")
    pull.add_argument("destination", help="folder to create (then: tmi-nlp report DESTINATION)")
    pull.add_argument("--revision", default=None)
    args = parser.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    rank, world, launch_id = take_launch_context()  # under `accelerate launch`: this process's share
    try:
        if args.command in ("push", "pull"):
            if args.command == "push":
                print(f"pushed: {hub.push_zoo(args.run, args.repo_id, private=not args.public)}")
            else:
                print(f"pulled into {hub.pull_zoo(args.repo_id, args.destination, revision=args.revision)}; "
                      f"next: tmi-nlp report {args.destination}")
            return 0
        if args.command == "compare":
            print(compare(args.runs, args.attacks.split(","), args.output))
            print(f"overlaid ROC: {Path(args.output) / 'compare.png'}")
            return 0
        recipe = _recipe(args)
        start = time.perf_counter()
        if args.command == "check":
            _check(recipe, args.recipe)
            return 0
        if args.command == "base":
            _print_base(recipe)
            return 0
        if args.command in ("run", "demo"):
            if world > 1:
                summary = run_launched(recipe, rank, world, launch_id)
                if summary is not None:
                    _print_summary(recipe, summary, time.perf_counter() - start)
                return 0
            _print_summary(recipe, run_all(recipe), time.perf_counter() - start)
            return 0
        with writer_lock(recipe.run_dir, keep_if=PREPARED):
            _stage(args, recipe, start)
        return 0
    except (RecipeError, DataError, DiskSpaceError, LaunchError, WorkerError, RunLocked, hub.ZooError) as err:
        print(f"tmi-nlp: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a folder that cannot be written (output_dir: /proc), a full disk, a lost network
        print(f"tmi-nlp: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tmi-nlp: interrupted; finished work is kept, rerun to resume", file=sys.stderr)
        return 130


def _stage(args: argparse.Namespace, recipe: Recipe, start: float) -> None:
    """One stage of the recipe's run folder (the caller holds its writer lock)."""
    if args.command == "prepare" or not RunDir(recipe.run_dir).prepared:
        prepare.prepare(recipe)  # the later stages read only the prepared run folder
    if args.command == "pretrain":
        train.train_models(recipe, stages=("pretrain", "signals"))
    elif args.command == "finetune":
        train.train_models(recipe, stages=("finetune",))
    elif args.command == "attack" and args.target:
        result = attack_target(recipe, load_target(args.target), name=args.name, fpr=args.fpr)
        for name, r in result["attacks"].items():
            print(f"{name:<24} members at {100 * args.fpr:g}% FPR: {r['members']:>5} of {recipe.run.num_points}"
                  f"   (threshold {r['threshold']:.4g}; AUC on the shadows {r['shadow_auc']:.3f})")
        print(f"per-text scores and decisions: {result['scores_csv']}")
    elif args.command == "attack" and args.victims:
        results = attack_victims(recipe, args.victims)
        print(f"shadows {recipe.run_dir} ({recipe.run.num_models} models) against victims {args.victims}:")
        print(summary_table(results))
    elif args.command == "attack":
        print(json.dumps(attack.attack(recipe), indent=2))
    elif args.command == "dataset" and args.reference and not args.texts:
        raise RecipeError(f"--reference {args.reference!r}: given without --texts; expected the candidate set to "
                          f"test against it")
    elif args.command == "dataset" and args.target:
        if not (args.texts and args.reference):
            raise RecipeError(f"--target {args.target!r}: given without --texts and --reference; expected the "
                              f"candidate set and texts known unused to test it against")
        result = target_set_test(recipe, load_target(args.target), _lines(args.texts, "--texts"),
                                 _lines(args.reference, "--reference"), name=args.name)
        print(f"set of {result['texts']} texts against {result['reference_texts']} reference texts known unused "
              f"(two-sample), statistic {result['statistic']}; H0: {args.target} saw none of them")
        print(f"p = {result['p_value']:.4f}   (mean score difference {result['mean_difference']:+.4f})")
    elif args.command == "dataset" and args.texts:
        result = dataset_test(recipe, _lines(args.texts, "--texts"),
                              _lines(args.reference, "--reference") if args.reference else None)
        against = (f" against {result['reference_texts']} reference texts known unused (two-sample)"
                   if args.reference else "")
        print(f"set of {result['texts']} texts{against}, statistic {result['statistic']}; H0: the victim saw none "
              f"of them")
        for v in result["victims"]:
            saw = f"it saw {v['members']} of them" + (f", {v['reference_members']} of the reference"
                                                      if args.reference else "")
            print(f"victim {v['victim']:>3}: p = {v['p_value']:.4f}   ({saw})")
    elif args.command == "dataset":
        print(dataset_table(dataset_power(recipe)))
    elif args.command == "report":
        _print_summary(recipe, report.report(recipe), time.perf_counter() - start)


def _lines(path: str, option: str) -> list[str]:
    try:
        lines = [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines()]
    except UnicodeDecodeError as err:
        raise RecipeError(f"{option} {path!r}: not UTF-8 text; expected one text per line") from err
    except OSError as err:
        raise RecipeError(f"{option} {path!r}: cannot be read ({err.strerror}); expected a file of texts") from err
    if not any(lines):
        raise RecipeError(f"{option} {path!r}: no text; expected one text per line")
    return [line for line in lines if line]


if __name__ == "__main__":
    sys.exit(main())
