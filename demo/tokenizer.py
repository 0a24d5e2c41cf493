"""The demo models' tokenizer: a small byte-level BPE with newline as its own token and the factor tags as specials."""
from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from reasoning.factors import load_catalog

EOS = "<|endoftext|>"
PAD = "<|pad|>"


def tag_tokens() -> list[str]:
    """Every open and close tag of the default catalog (the backends need them all as single tokens)."""
    return [t for f in load_catalog() for t in (f.tags or ())]


def train_tokenizer(texts: list[str], vocab_size: int = 512) -> PreTrainedTokenizerFast:
    """Byte-level BPE trained on `texts`; tags and the end/pad tokens are added as special tokens."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = [EOS, PAD, *tag_tokens()]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, pad_token=PAD, bos_token=EOS)
    fast.model_max_length = 100_000
    return fast


def check_tokenizer(tok: PreTrainedTokenizerFast) -> None:
    """Fail fast when a tag or the newline is not one token (tags mode and the PRM separator rely on it)."""
    for text in [*tag_tokens(), "\n"]:
        ids = tok.encode(text, add_special_tokens=False)
        if len(ids) != 1:
            raise ValueError(f"the demo tokenizer splits {text!r} into {len(ids)} tokens")


def save_tokenizer(tok: PreTrainedTokenizerFast, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(out)
