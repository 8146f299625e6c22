"""The open_clip text tower as a word / class-name encoder, with an in-memory per-text cache."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _clear_cache_hook(module: TextEncoder, _incompatible_keys) -> None:
    module.clear_cache()


class TextEncoder(nn.Module):
    """Encodes words and class names into the joint space, L2-normalised.

    Args:
        clip_model: an open_clip model with `encode_text` (its visual tower may be removed).
        tokenizer: open_clip tokenizer of the same model: list[str] -> long [K, context_length].
        freeze: no gradients and eval mode for the tower [paper: the text encoder stays frozen].

    An nn.Module so that the tower's weights are part of the state dict (random toy towers must be
    restorable from a checkpoint). When frozen, each unique text is encoded once and kept in memory;
    only the cache misses of a call are encoded, as one batch. When not frozen nothing is cached (the
    embeddings change as the tower trains) and gradients flow. The cache is cleared whenever weights
    are loaded.
    """

    def __init__(self, clip_model: nn.Module, tokenizer: Callable, freeze: bool = True) -> None:
        super().__init__()
        self.clip = clip_model
        self.tokenizer = tokenizer
        self.frozen = freeze
        self._cache: dict[str, Tensor] = {}
        if freeze:
            for param in self.clip.parameters():
                param.requires_grad = False
            self.clip.eval()
        # a module-level function, not a lambda: the module must stay picklable (ddp_spawn)
        self.register_load_state_dict_post_hook(_clear_cache_hook)
        with torch.no_grad():
            self.embed_dim = int(self._encode_batch(["a"]).shape[-1])

    def train(self, mode: bool = True) -> TextEncoder:
        super().train(mode)
        if self.frozen:
            self.clip.eval()
        return self

    def clear_cache(self) -> None:
        self._cache.clear()

    @property
    def device(self) -> torch.device:
        return next(self.clip.parameters()).device

    def _encode_batch(self, texts: list[str]) -> Tensor:
        """One tower call: texts -> [K, D] L2-normalised."""
        tokens = self.tokenizer(texts).to(self.device)
        return F.normalize(self.clip.encode_text(tokens).float(), dim=-1)

    def encode(self, words: Sequence[str]) -> Tensor:
        """words (K strings, repeats allowed) -> [K, D] float32 on the tower's device; [0, D] for none."""
        words = list(words)
        if not words:
            return torch.zeros(0, self.embed_dim, device=self.device)
        if not self.frozen:
            return self._encode_batch(words)
        device = self.device
        if self._cache and next(iter(self._cache.values())).device != device:
            # the tower was moved: move the cache once rather than copying on every lookup
            self._cache = {word: emb.to(device) for word, emb in self._cache.items()}
        misses = list(dict.fromkeys(w for w in words if w not in self._cache))
        if misses:
            with torch.no_grad():
                fresh = self._encode_batch(misses)
            self._cache.update(zip(misses, fresh, strict=True))
        return torch.stack([self._cache[w] for w in words])

    def encode_classes(
        self, classes: Sequence[Sequence[str]], templates: Sequence[str] | None = None
    ) -> tuple[Tensor, Tensor]:
        """Class names with synonyms -> (embeds [C, S, D], valid [C, S] bool), S = most synonyms.

        Each name is filled into every template (`"a photo of a {}."`; None = the bare name), the
        template embeddings are averaged and renormalised. Padded synonym slots are zero with
        valid False. Raises ValueError for a class without names or a template without `{}`.
        """
        templates = list(templates) if templates else ["{}"]
        if any("{}" not in t for t in templates):
            raise ValueError("every prompt template must contain '{}'")
        from openseg_cli.text.templates import fill_template  # ViLD's templates also use {article}

        if any(len(names) == 0 for names in classes):
            raise ValueError("every class needs at least one name")
        num_syn = max((len(names) for names in classes), default=0)
        embeds = torch.zeros(len(classes), num_syn, self.embed_dim, device=self.device)
        valid = torch.zeros(len(classes), num_syn, dtype=torch.bool, device=self.device)
        names = [(c, s, name) for c, syns in enumerate(classes) for s, name in enumerate(syns)]
        if not names:
            return embeds, valid
        texts = [fill_template(t, name) for _, _, name in names for t in templates]
        per_template = self.encode(texts).reshape(len(names), len(templates), -1)
        averaged = F.normalize(per_template.mean(dim=1), dim=-1)  # [num_names, D]
        rows = torch.tensor([c for c, _, _ in names], device=self.device)
        cols = torch.tensor([s for _, s, _ in names], device=self.device)
        embeds[rows, cols] = averaged
        valid[rows, cols] = True
        return embeds, valid
