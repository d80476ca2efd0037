"""Tokenizer, masked-LM pretraining and the finetuning-method registry."""
