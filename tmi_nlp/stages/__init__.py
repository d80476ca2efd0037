"""The TMI stages, one module each, linked only by files in the run folder (`tmi_nlp.store.RunDir`).

    base     the public base encoder, once per content      -> <base cache>/<hash>/ (linked as base/ by prepare)
    prepare  reads the raw data (the only stage that does)  -> config.yaml, base/, plan/, tokenizer/, data/
    train    pretrain, signals, finetune, per model         -> models/<i>/
    attack   every attack; victims.py and target.py use the same loop with other roles
                                                            -> attacks/, victims/, targets/
    report   tables and figures                             -> report/
    compare  a table and an overlaid ROC across finished runs
"""

from tmi_nlp.atomic import writer_lock
from tmi_nlp.config import Recipe
from tmi_nlp.stages import prepare, report, train
from tmi_nlp.store import PREPARED


def run_all(recipe: Recipe, progress: bool = True) -> dict:
    """Every stage in order, skipping finished work; returns the report's summary. One writer per run folder:
    a second process gets `RunLocked`."""
    with writer_lock(recipe.run_dir, keep_if=PREPARED):
        prepare.prepare(recipe)
        train.train_models(recipe, progress=progress)
        return report.report(recipe)
