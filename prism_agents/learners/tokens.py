"""The token kernel: batching, collation, the truncation rule and the logits call that SFT, the probe, GRPO and
PPO share.

* :func:`length_batches` groups sequences of similar length under a padded-token budget and never lets a batch
  carry more than :data:`MAX_PADDING_SHARE` padding (a sequence that would raise it starts a new batch);
  :func:`padding_share` reports what a set of batches carries.
* :func:`collate` right-pads a batch into ``input_ids``, ``attention_mask`` and ``loss_mask`` tensors.
* :func:`fit_example` is the one truncation rule: a sequence longer than the context is cut from the front, the
  system prompt kept when it fits, the last supervised span kept whole, a span cut in two unsupervised.
* :func:`action_token_logits` runs the model's own forward (so a model's logit scaling or soft-capping applies)
  and asks it for the logits of the positions predicting a loss token only (``logits_to_keep``), which saves
  the LM head's work on prompt tokens; :func:`action_token_losses` turns them into cross-entropies.

Data-parallel workers share these batches by the rule of :mod:`~prism_agents.learners.parallel`.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import replace
from typing import TypeVar

import torch
import torch.nn.functional as F

from prism_agents.policies.prompts import TrainingExample

MAX_PADDING_SHARE = 0.10
"""Largest share of padding tokens a batch of :func:`length_batches` may hold (1 - real tokens / rows x longest)."""

Example = TypeVar("Example", bound=TrainingExample)


def length_batches(
    lengths: Sequence[int],
    batch_tokens: int,
    rng: random.Random | None = None,
    rows: Sequence[int] | None = None,
    tokens: Sequence[int] | None = None,
) -> list[list[int]]:
    """Item indices grouped by similar length: rows x longest <= ``batch_tokens``, and the padding that grouping
    adds at most :data:`MAX_PADDING_SHARE` of a batch.

    ``lengths``: each item's longest row; ``rows``: its number of rows (1 each by default); ``tokens``: its real
    tokens (``rows x length`` by default; an item of rows of unequal lengths brings its own padding, which
    does not count against the cap). With ``rng`` equal lengths are ordered at random and the batches
    shuffled, so they differ between epochs while their number stays fixed; without it the order is by length,
    then index. An item over the budget, and every item when ``batch_tokens`` is 0, is a batch of its own.
    """
    rows = [1] * len(lengths) if rows is None else list(rows)
    tokens = [r * n for r, n in zip(rows, lengths)] if tokens is None else list(tokens)
    tiebreak = (lambda index: rng.random()) if rng is not None else (lambda index: index)
    order = sorted(range(len(lengths)), key=lambda index: (lengths[index], tiebreak(index)))
    own_padding = [r * n - t for r, n, t in zip(rows, lengths, tokens)]
    batches: list[list[int]] = []
    batch_rows = batch_real = batch_own = 0
    for index in order:
        grown_rows, grown_real = batch_rows + rows[index], batch_real + tokens[index]
        grown_own = batch_own + own_padding[index]
        padded = grown_rows * lengths[index]  # the item is the longest so far: the order is by length
        if batches and padded <= batch_tokens and padded - grown_real - grown_own <= MAX_PADDING_SHARE * padded:
            batches[-1].append(index)
            batch_rows, batch_real, batch_own = grown_rows, grown_real, grown_own
        else:
            batches.append([index])
            batch_rows, batch_real, batch_own = rows[index], tokens[index], own_padding[index]
    if rng is not None:
        rng.shuffle(batches)
    return batches


def padding_share(lengths: Sequence[int], batches: Sequence[Sequence[int]]) -> float:
    """Share of padding in ``batches`` of single-row items of ``lengths`` (0 when there is nothing)."""
    padded = sum(len(batch) * max(lengths[index] for index in batch) for batch in batches)
    return 1.0 - sum(lengths[index] for batch in batches for index in batch) / padded if padded else 0.0


def collate(
    examples: Sequence[TrainingExample], pad_id: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded ``input_ids``, ``attention_mask`` and ``loss_mask`` tensors of ``examples``."""
    width = max(len(example.input_ids) for example in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(examples), width), dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, example in enumerate(examples):
        size = len(example.input_ids)
        ids[row, :size] = torch.tensor(example.input_ids)
        attention[row, :size] = 1
        mask[row, :size] = torch.tensor(example.loss_mask)
    return ids.to(device), attention.to(device), mask.to(device)


def fit_example(example: Example, max_len: int, head: Sequence[int]) -> tuple[Example | None, int]:
    """``example`` cut from the front to at most ``max_len`` tokens, and how many of its loss tokens went.

    ``head`` (the system prompt's tokens) is kept in front when ``example`` starts with it and the last
    supervised span still fits beside it; the oldest tokens after it are dropped. A span cut in two loses
    its supervision (mask 0 on its remaining tokens), so only whole spans are trained on. The example is
    None when its last supervised span does not fit (one without any is cut like a span of length 0).
    """
    ids, mask = example.input_ids, example.loss_mask
    if len(ids) <= max_len:
        return example, 0
    last_span = len(ids)
    while last_span > 0 and not mask[last_span - 1]:
        last_span -= 1
    while last_span > 0 and mask[last_span - 1]:
        last_span -= 1  # now the start of the last supervised span
    needed = len(ids) - last_span if any(mask) else 0
    if needed >= max_len:  # the span's first token also needs one token before it to be predicted from
        return None, sum(mask)
    prefix = len(head) if list(ids[: len(head)]) == list(head) and len(head) + needed <= max_len else 0
    start = len(ids) - (max_len - prefix)
    tail_mask = list(mask[start:])
    if mask[start - 1]:  # the cut fell inside a span: drop the rest of that span's supervision
        cut = 0
        while cut < len(tail_mask) and tail_mask[cut]:
            tail_mask[cut] = 0
            cut += 1
    fitted = replace(example, input_ids=list(ids[:prefix]) + list(ids[start:]), loss_mask=[0] * prefix + tail_mask)
    return fitted, sum(mask) - sum(tail_mask)


def action_token_logits(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    loss_mask: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    inputs_embeds: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Float32 logits predicting every token where ``loss_mask`` is 1 (row-major), those tokens, and the
    (rows, length - 1) boolean mask of the predicting positions.

    One call of the model's forward, asked for the logits of the positions that predict a loss token in any
    row. ``inputs_embeds``, when given, replaces the embedding lookup of ``input_ids`` (a gradient can enter
    there); ``attention_mask`` None suits right-padded batches whose padding outputs are never read.
    """
    targets = loss_mask[:, 1:].bool()
    kept = targets.any(dim=0).nonzero().squeeze(1)
    inputs = {"input_ids": input_ids} if inputs_embeds is None else {"inputs_embeds": inputs_embeds}
    logits = model(**inputs, attention_mask=attention_mask, logits_to_keep=kept, use_cache=False).logits
    return logits[targets[:, kept]].float(), input_ids[:, 1:][targets], targets


def action_token_losses(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    loss_mask: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    inputs_embeds: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Next-token cross-entropy of every token where ``loss_mask`` is 1 (row-major), and the predicting-position
    mask (see :func:`action_token_logits`)."""
    logits, tokens, targets = action_token_logits(model, input_ids, loss_mask, attention_mask, inputs_embeds)
    return F.cross_entropy(logits, tokens, reduction="none"), targets


def action_token_loss(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    loss_mask: torch.Tensor,
    token_count: int | None = None,
) -> tuple[torch.Tensor, int]:
    """Mean next-token cross-entropy over the tokens where ``loss_mask`` is 1, and their count.

    ``token_count`` replaces the count as the denominator (a data-parallel worker divides its rows' sum by the
    whole batch's count: :mod:`~prism_agents.learners.parallel`)."""
    losses, targets = action_token_losses(model, input_ids, loss_mask, attention_mask=attention_mask)
    count = int(targets.sum())
    return losses.sum() / max(count if token_count is None else token_count, 1), count
