"""Builders of tiny models (tokenizer, causal LMs, PRMs of every adapter family) written from configs, no download."""
from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    GPT2Config,
    GPT2ForTokenClassification,
    GPT2LMHeadModel,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
)

from reasoning.factors import load_catalog

EOS = "<|endoftext|>"
STEP_TAG = "ки"
QWEN_SEPARATOR = "<extra_0>"
CHAT_TOKENS = ["<|im_start|>", "<|im_end|>"]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
VOCAB_SIZE = 420
SMALL = {"hidden": 64, "layers": 2, "heads": 2, "positions": 512}


def factor_tags() -> list[str]:
    """Every open and close tag of the default catalog."""
    return [t for f in load_catalog() if f.tags for t in f.tags]


def corpus(size: int = 300, seed: int = 0) -> list[str]:
    """A few hundred short reasoning-like lines: arithmetic, cues and words, enough to train a small BPE."""
    rng = random.Random(seed)
    cues = [f.cue for f in load_catalog()]
    words = ["the", "goal", "is", "make", "use", "numbers", "answer", "check", "step", "so", "then", "we", "get"]
    lines = []
    for _ in range(size):
        a, b = rng.randint(1, 13), rng.randint(1, 13)
        op = rng.choice("+-*/")
        lines.append(f"{rng.choice(cues)}{a} {op} {b} = {a + b}. {' '.join(rng.sample(words, 4))}\n\n")
    return lines


def build_tokenizer(path: Path, *, tags: bool = True, step_tag: bool = True) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer; `tags` adds the catalog's factor tags as special tokens, `step_tag` adds `ки`."""
    specials = [EOS, QWEN_SEPARATOR, *CHAT_TOKENS, *(factor_tags() if tags else [])]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus(), trainer)
    if step_tag:
        tok.add_tokens([AddedToken(STEP_TAG, normalized=False)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, bos_token=EOS, pad_token=EOS)
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(path)
    return fast


def _gpt2_config(tokenizer: PreTrainedTokenizerFast, positions: int, **extra) -> GPT2Config:
    return GPT2Config(
        vocab_size=len(tokenizer), n_positions=positions, n_embd=SMALL["hidden"], n_layer=SMALL["layers"],
        n_head=SMALL["heads"], initializer_range=0.2, bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, **extra,
    )


def _qwen2_config(tokenizer: PreTrainedTokenizerFast) -> Qwen2Config:
    return Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=SMALL["hidden"], intermediate_size=2 * SMALL["hidden"],
        num_hidden_layers=SMALL["layers"], num_attention_heads=SMALL["heads"], num_key_value_heads=1,
        max_position_embeddings=SMALL["positions"], tie_word_embeddings=False, initializer_range=0.2,
        bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )


def build_fixed_output_gpt2(path: Path, token: str, *, tags: bool = True) -> Path:
    """A GPT-2 that always predicts `token`: its final layer norm outputs a constant aligned with that embedding."""
    tokenizer = build_tokenizer(path, tags=tags)
    (token_id,) = tokenizer.encode(token, add_special_tokens=False)
    torch.manual_seed(0)
    model = GPT2LMHeadModel(_gpt2_config(tokenizer, SMALL["positions"]))
    with torch.no_grad():
        row = model.transformer.wte.weight[token_id]
        model.transformer.ln_f.weight.zero_()
        model.transformer.ln_f.bias.copy_(row * (40.0 / row.norm() ** 2))
    return _save(model, path)


def _save(model: torch.nn.Module, path: Path) -> Path:
    model.save_pretrained(path, safe_serialization=True)
    return path


def build_gpt2_lm(path: Path, *, tags: bool = True, positions: int = SMALL["positions"], seed: int = 0) -> Path:
    """A GPT-2 causal LM; with `tags` its tokenizer holds the factor tags (a tag-trained model's layout)."""
    tokenizer = build_tokenizer(path, tags=tags)
    torch.manual_seed(seed)
    return _save(GPT2LMHeadModel(_gpt2_config(tokenizer, positions)), path)


def build_qwen2_lm(path: Path, *, tags: bool = False, seed: int = 1) -> Path:
    """A Qwen2-architecture causal LM; without tags in its tokenizer it is prompted with cues."""
    tokenizer = build_tokenizer(path, tags=tags)
    torch.manual_seed(seed)
    return _save(Qwen2ForCausalLM(_qwen2_config(tokenizer)), path)


def build_token_classification_prm(path: Path, *, seed: int = 2) -> Path:
    """A GPT2ForTokenClassification PRM with two labels, the layout TRL's PRMTrainer trains."""
    tokenizer = build_tokenizer(path)
    torch.manual_seed(seed)
    return _save(GPT2ForTokenClassification(_gpt2_config(tokenizer, SMALL["positions"], num_labels=2)), path)


def build_math_shepherd_prm(path: Path, *, step_tag: bool = True, seed: int = 3) -> Path:
    """A Math-Shepherd-style causal-LM PRM (step tag `ки`, good/bad tokens `+`/`-`) with its prm_config.json."""
    tokenizer = build_tokenizer(path, step_tag=step_tag)
    torch.manual_seed(seed)
    _save(GPT2LMHeadModel(_gpt2_config(tokenizer, SMALL["positions"])), path)
    prm_config = {"adapter": "math-shepherd", "step_tag": STEP_TAG, "good_token": "+", "bad_token": "-"}
    (path / "prm_config.json").write_text(json.dumps(prm_config), encoding="utf-8")
    return path


def build_value_head_prm(path: Path, *, seed: int = 4) -> Path:
    """A causal LM with a linear value head stored beside it as value_head.safetensors."""
    tokenizer = build_tokenizer(path)
    torch.manual_seed(seed)
    _save(GPT2LMHeadModel(_gpt2_config(tokenizer, SMALL["positions"])), path)
    head = torch.nn.Linear(SMALL["hidden"], 1)
    save_file({"weight": head.weight.detach().contiguous(), "bias": head.bias.detach().contiguous()},
              str(path / "value_head.safetensors"))
    return path


_QWEN_PRM_CODE = '''"""A tiny stand-in for Qwen2.5-Math-PRM's remote code: a Qwen2 body and a two-class head per token."""
import torch.nn as nn
from transformers import Qwen2Model, Qwen2PreTrainedModel
from transformers.modeling_outputs import TokenClassifierOutput


class Qwen2ForProcessRewardModel(Qwen2PreTrainedModel):
    def __init__(self, config):
        super().__init__(config)
        self.model = Qwen2Model(config)
        self.score = nn.Sequential(nn.Linear(config.hidden_size, config.hidden_size), nn.ReLU(),
                                   nn.Linear(config.hidden_size, 2))
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, **kwargs):
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return TokenClassifierOutput(logits=self.score(hidden))
'''


def build_qwen_prm(path: Path, *, seed: int = 5) -> Path:
    """A Qwen2.5-Math-PRM-style model: local remote code (auto_map), chat template and `<extra_0>` separators."""
    tokenizer = build_tokenizer(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / "modeling_tiny_prm.py").write_text(_QWEN_PRM_CODE, encoding="utf-8")
    namespace: dict = {}
    exec(compile(_QWEN_PRM_CODE, "modeling_tiny_prm.py", "exec"), namespace)  # the same class the loader will import
    config = _qwen2_config(tokenizer)
    config.architectures = ["Qwen2ForProcessRewardModel"]
    config.auto_map = {"AutoModel": "modeling_tiny_prm.Qwen2ForProcessRewardModel"}
    torch.manual_seed(seed)
    model = namespace["Qwen2ForProcessRewardModel"](config)
    _save(model, path)
    saved = json.loads((path / "config.json").read_text(encoding="utf-8"))
    saved["architectures"], saved["auto_map"] = config.architectures, config.auto_map
    (path / "config.json").write_text(json.dumps(saved, indent=2), encoding="utf-8")
    return path


def build_generative_prm(path: Path, *, seed: int = 7) -> Path:
    """A causal LM read as a generative PRM (critique, then a \\boxed{correct} / \\boxed{incorrect} verdict)."""
    build_gpt2_lm(path, seed=seed)
    (path / "prm_config.json").write_text(json.dumps({"adapter": "generative", "max_critique_tokens": 4}),
                                          encoding="utf-8")
    return path


@dataclass(frozen=True)
class TinyModels:
    """Paths of every tiny model, built once per test session."""

    gpt2_tags: Path
    qwen2_cues: Path
    gpt2_short: Path
    token_classification: Path
    math_shepherd: Path
    value_head: Path
    qwen_prm: Path
    generative: Path

    @property
    def prms(self) -> dict[str, Path]:
        return {
            "token-classification": self.token_classification, "math-shepherd": self.math_shepherd,
            "value-head": self.value_head, "qwen-prm": self.qwen_prm, "generative": self.generative,
        }


BUILDERS = {
    "gpt2_tags": build_gpt2_lm,
    "qwen2_cues": build_qwen2_lm,
    "gpt2_short": lambda p: build_gpt2_lm(p, positions=48),
    "token_classification": build_token_classification_prm,
    "math_shepherd": build_math_shepherd_prm,
    "value_head": build_value_head_prm,
    "qwen_prm": build_qwen_prm,
    "generative": lambda p: build_generative_prm(p),
}


def build_all(root: Path) -> TinyModels:
    """Build every tiny model under `root`, or reuse them when an earlier call of this session already did.

    Also runs torch on one thread: on a shared two-core machine, threads only add contention to these tiny
    matmuls (measured: four searches take 0.25 s on one thread and 7 s on two under load).
    """
    torch.set_num_threads(1)
    root = Path(root)
    marker = root / "BUILT"
    if not marker.exists():
        for name, build in BUILDERS.items():
            build(root / name)
        marker.write_text("ok", encoding="utf-8")
    return TinyModels(**{name: root / name for name in BUILDERS})


def build_sequence_classification_orm(path: Path, *, num_labels: int = 1, seed: int = 6) -> Path:
    """A GPT2ForSequenceClassification outcome reward model (one score per whole solution)."""
    from transformers import GPT2ForSequenceClassification

    tokenizer = build_tokenizer(path)
    torch.manual_seed(seed)
    return _save(GPT2ForSequenceClassification(_gpt2_config(tokenizer, SMALL["positions"], num_labels=num_labels)),
                 path)
