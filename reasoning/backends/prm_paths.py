"""How a PRM path (a question and its steps) becomes token ids and the positions where each step's score is read:
one encoder for the token-classification adapter, the server PRM and `train-prm`'s data, so that a model is trained
on exactly the ids it is scored on. Torch-free: the server backend uses it without loading torch."""
from __future__ import annotations

from collections.abc import Callable, Sequence

QWEN_PRM_SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."
NEUTRAL = 0.5  # the score of a step whose reading position fell outside the PRM's context


def separated_path(encode: Callable[[str], list[int]], bos: int | None, question: str, steps: Sequence[str],
                   separator_ids: list[int]) -> tuple[list[int], list[int]]:
    """TRL's token-classification layout, as `trl.experimental.prm.PRMTrainer.tokenize_row` builds it: BOS (when
    the tokenizer has one), the question, then each step's tokens plus the separator's, each piece tokenized on its
    own (`encode`, no special tokens); a step's score is read at its separator's last token."""
    ids = ([bos] if bos is not None else []) + encode(question)
    positions = []
    for step in steps:
        ids += encode(step) + separator_ids
        positions.append(len(ids) - 1)
    return ids, positions


def qwen_prm_messages(question: str, steps: Sequence[str], separator: str,
                      system: str = QWEN_PRM_SYSTEM) -> list[dict[str, str]]:
    """Qwen2.5-Math-PRM's chat: the system prompt, the question, and the steps joined by (and ending in) the
    separator, which is taken out of the steps' own text; a step's score is read at each separator token."""
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": question},
        {"role": "assistant", "content": separator.join(s.replace(separator, "") for s in steps) + separator},
    ]


def positions_of(ids: list[int], token: int) -> list[int]:
    return [i for i, t in enumerate(ids) if t == token]


def fit_path(ids: list[int], positions: list[int], limit: int | None) -> tuple[list[int], list[int]]:
    """Keep the last `limit` tokens of a path; a step read before the cut gets position -1 (scored NEUTRAL)."""
    if limit is None or len(ids) <= limit:
        return ids, positions
    cut = len(ids) - limit
    return ids[cut:], [p - cut if p >= cut else -1 for p in positions]
