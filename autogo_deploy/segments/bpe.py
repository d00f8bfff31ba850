"""Byte-pair encoding over node tokens, with HF `tokenizers` as the engine.

Every distinct node token gets one private-use code point (U+E000...), so a graph's canonical token
sequence is a plain string of one character per node and the maintained Rust BPE trainer learns the
merges. A learned piece is therefore a run of consecutive nodes in canonical order; `encode` returns
those runs as half-open node-index ranges. No pre-tokenizer and no normalizer are used: one network is
one "word", so pieces may span any node boundary. Identical sequences are counted by the trainer, so
feeding a sequence k times weighs it k times.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from autogo_deploy.errors import DatabaseError

UNK = "<unk>"
_BMP_PUA = (0xE000, 0xF8FF)
_PLANE15_PUA = (0xF0000, 0xFFFFD)


def code_point(index: int) -> str:
    """The character used for token number `index` (private-use areas only)."""
    size_bmp = _BMP_PUA[1] - _BMP_PUA[0] + 1
    if index < size_bmp:
        return chr(_BMP_PUA[0] + index)
    index -= size_bmp
    if index <= _PLANE15_PUA[1] - _PLANE15_PUA[0]:
        return chr(_PLANE15_PUA[0] + index)
    raise ValueError(f"too many distinct node tokens ({index + size_bmp})")


class Merges:
    """A trained BPE model: encodes token strings into pieces (node-index ranges)."""

    def __init__(self, tokenizer_json: str):
        from tokenizers import Tokenizer

        try:
            self._tok = Tokenizer.from_str(tokenizer_json)
        except Exception as exc:
            raise DatabaseError(f"the stored BPE model cannot be read: {exc}") from None
        self.json = tokenizer_json

    @classmethod
    def train(cls, sequences: Iterable[str], *, alphabet: list[str], vocab_size: int) -> Merges:
        """Learn merges until the vocabulary (alphabet + pieces) reaches `vocab_size` or no pair
        occurs twice. Deterministic: same sequences (any order) give the same merges."""
        from tokenizers import Tokenizer, models, trainers

        tok = Tokenizer(models.BPE(unk_token=UNK))
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=2,
            special_tokens=[UNK],
            initial_alphabet=alphabet,
            limit_alphabet=len(alphabet) + 1,
            show_progress=False,
        )
        tok.train_from_iterator(sequences, trainer)
        # Round-trip through a canonical JSON (sorted keys) so the stored model is byte-stable.
        text = json.dumps(json.loads(tok.to_str()), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        return cls(text)

    def vocab(self) -> dict[str, int]:
        return self._tok.get_vocab(with_added_tokens=True)

    def pieces(self) -> list[str]:
        """Every piece of the vocabulary (multi-character ones are learned merges), by id."""
        return [p for p, _ in sorted(self.vocab().items(), key=lambda kv: kv[1])]

    def encode(self, sequence: str) -> list[tuple[int, int]]:
        """Split a sequence into pieces; returns [(start, end)) character (= node) ranges."""
        if not sequence:
            return []
        enc = self._tok.encode(sequence, add_special_tokens=False)
        spans = [(int(a), int(b)) for a, b in enc.offsets]
        # Safety net: pieces must tile the sequence exactly (one character = one node).
        pos = 0
        for a, b in spans:
            if a != pos or b <= a:
                raise RuntimeError(f"BPE pieces do not tile the sequence at {pos}: {spans[:5]}...")
            pos = b
        if pos != len(sequence):
            raise RuntimeError("BPE pieces do not cover the whole sequence")
        return spans
