"""tmi-nlp: measure how much a finetuned BERT-style classifier leaks about its pretraining data (TMI)."""

__version__ = "0.1.0"
