import hashlib
import json
import os
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402
from hub_server import LoopbackHub  # noqa: E402
from transformers import BertConfig, BertModel  # noqa: E402

from tmi_nlp.config import recipe_from_dict  # noqa: E402
from tmi_nlp.data.synthetic import synthetic_pool  # noqa: E402
from tmi_nlp.models.tokenizer import wordpiece_vocabulary  # noqa: E402

SECRET = "hf_loopbackSECRETtoken0123456789"

TINY = {
    "run": {"num_models": 4, "num_points": 16, "workers": 1},
    "data": {"pool_size": 48, "num_train": 160, "num_eval": 40},
    "tokenizer": {"vocab_size": 400},
    "model": {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64,
              "max_length": 48},
    "pretrain": {"epochs": 2.0, "batch_size": 16},
    "finetune": {"epochs": 1.0, "batch_size": 32},
    "query": {"num_queries": 3},
    "attack": {"epochs": 3, "bootstrap": 10},
}


def tiny_recipe(tmp_path, **sections):
    raw = {k: dict(v) for k, v in TINY.items()}
    raw["run"]["output_dir"] = str(tmp_path / "runs")
    for section, values in sections.items():
        raw.setdefault(section, {}).update(values)
    return recipe_from_dict(raw)


@pytest.fixture
def tiny(tmp_path):
    return lambda **sections: tiny_recipe(tmp_path, **sections)


@pytest.fixture
def hub(monkeypatch):
    with LoopbackHub() as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        monkeypatch.setenv("HF_TOKEN", SECRET)
        monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        import huggingface_hub.constants as constants

        # huggingface_hub read HF_ENDPOINT when it was first imported (by transformers): point it here.
        monkeypatch.setattr(constants, "ENDPOINT", server.url)
        monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE",
                            server.url + "/{repo_id}/resolve/{revision}/{filename}")
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
        yield server


def headless_checkpoint(folder: Path) -> str:
    """A checkpoint of the public encoders' format: BertModel without a masked-LM head, an external vocab.txt
    (uncased WordPiece), 512 positions, a pooler. Returns its model.safetensors' sha256."""
    folder.mkdir(parents=True)
    vocab = wordpiece_vocabulary(synthetic_pool(200, seed=11), 400)
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    (folder / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "BertTokenizer",
                                                              "do_lower_case": True, "model_max_length": 512}))
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512, pad_token_id=vocab.index("[PAD]"))
    BertModel(config).save_pretrained(folder)
    return hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
