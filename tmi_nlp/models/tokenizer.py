"""The WordPiece tokenizer every model of a run shares, built once per run.

The vocabulary is counted here rather than by `tokenizers`' WordPieceTrainer: that trainer
breaks ties in hash-map order, which changes from process to process, so the same corpus gave
a different vocabulary on every run (huggingface/tokenizers#1794), and a run could not be
reproduced. The vocabulary is every character (alone and as a `##` continuation) plus the most
frequent words (ties broken alphabetically); `tokenizers` does the BERT normalisation,
pre-tokenisation and greedy longest-match WordPiece encoding.
"""

from collections import Counter
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def wordpiece_vocabulary(texts: list[str], vocab_size: int) -> list[str]:
    """Specials, characters, `##` characters, then words by frequency (ties alphabetical)."""
    normalizer, pre = normalizers.BertNormalizer(lowercase=True), pre_tokenizers.BertPreTokenizer()
    counts = Counter(w for text in texts for w, _ in pre.pre_tokenize_str(normalizer.normalize_str(text)))
    chars = sorted({c for word in counts for c in word})
    base = SPECIAL_TOKENS + chars + ["##" + c for c in chars]
    words = [w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if len(w) > 1]
    return base + words[: max(0, vocab_size - len(base))]


def train_wordpiece(texts: list[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """An uncased BERT-style WordPiece tokenizer whose vocabulary is drawn from `texts`."""
    vocab = wordpiece_vocabulary(texts, vocab_size)
    tok = Tokenizer(models.WordPiece({t: i for i, t in enumerate(vocab)}, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    cls_id, sep_id = vocab.index("[CLS]"), vocab.index("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                   cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerBase:
    # Local files only, and never remote code: a tokenizer is data, not a program.
    return AutoTokenizer.from_pretrained(str(path), trust_remote_code=False)


def first_regular_id(tokenizer: PreTrainedTokenizerBase) -> int:
    """Smallest id above every special token (substitutions draw from the ids after it)."""
    return max(tokenizer.all_special_ids) + 1
