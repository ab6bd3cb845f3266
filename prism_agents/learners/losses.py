"""Policy-gradient losses as plain functions on token-level tensors.

Conventions
-----------
* Token tensors have shape ``(rows, tokens)``: one row per training sample (a turn's
  prompt + response, padded), with ``mask`` (float or bool, same shape) non-zero on the
  action tokens the loss applies to. In the policy losses, masked-out log-probs and
  advantages may hold anything (padding, garbage): they never reach the result or its gradient.
* Aggregation is *token-mean*: the mean over all action tokens of the batch, so every
  action token weighs the same (verl's default ``token-mean``; longer responses count more
  than under a per-sequence mean). ``token_count``, when given, replaces the mask's count as
  the denominator: a learner that leaves out samples which cannot change anything passes the
  batch's full count, so leaving them out does not enlarge the others' step.
* Log-probabilities are of the sampled tokens (``log pi(a_t | s_t)``), not full distributions.
"""

from __future__ import annotations

import torch
from torch import Tensor


LOG_RATIO_LIMIT = 20.0
"""The k3 KL's log-ratio is clamped to [-20, 20] before ``exp`` (verl's bound), so the term and its gradient stay
finite for any pair of log-probs; the per-token clamp of the term itself is the caller's ``clamp``."""


def masked_mean(values: Tensor, mask: Tensor, dim: int | None = None, token_count: float | None = None) -> Tensor:
    """``sum(values * mask) / sum(mask)`` over ``dim`` (all if None); 0 where the mask is all zero.

    ``token_count`` (with ``dim`` None only) replaces ``sum(mask)`` as the denominator.
    """
    mask = mask.to(values.dtype)
    weighted = torch.where(mask != 0, values * mask, torch.zeros_like(values))
    total = weighted.sum() if dim is None else weighted.sum(dim)
    count = mask.sum() if dim is None else mask.sum(dim)
    if token_count is not None:
        if dim is not None or token_count < count.item():
            raise ValueError(f"token_count {token_count} needs dim=None and at least the mask's {count.item():g} tokens")
        count = torch.tensor(float(token_count), dtype=values.dtype, device=values.device)
    return torch.where(count > 0, total / count.clamp(min=torch.finfo(values.dtype).tiny), torch.zeros_like(total))


def _masked_log_ratio(numerator: Tensor, denominator: Tensor, mask: Tensor) -> Tensor:
    """``numerator - denominator`` on action tokens, 0 elsewhere (so ``exp`` stays finite there)."""
    return torch.where(mask != 0, numerator - denominator, torch.zeros_like(numerator))


def clipped_policy_loss(
    logprobs: Tensor,
    old_logprobs: Tensor,
    advantages: Tensor,
    mask: Tensor,
    clip_ratio: float = 0.2,
    clip_ratio_high: float | None = None,
    clip_ratio_c: float | None = None,
    token_count: float | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """PPO/GRPO clipped surrogate, token-mean over action tokens (or divided by ``token_count``).

    ``rho = exp(logprobs - old_logprobs)``; per token
    ``loss = -min(rho * A, clip(rho, 1 - clip_ratio, 1 + clip_ratio_high) * A)``
    (``clip_ratio_high`` defaults to ``clip_ratio``). With ``clip_ratio_c`` (dual clip, verl's
    ``clip_ratio_c``) a token with ``A < 0`` loses at most ``-clip_ratio_c * A``: ``min(loss, -c * A)``,
    no gradient where that bound is active. ``advantages`` is per row ``(rows,)``, broadcast over the
    row's tokens, or per token ``(rows, tokens)``.

    Stats (floats, over action tokens): ``clip_fraction`` (share of tokens where the clipped
    term is the active one, i.e. carries no gradient; the dual clip's tokens are not counted), ``approx_kl`` (k3 estimate of
    KL(old || new): mean of ``rho - 1 - log rho``, non-negative), ``ratio_mean``.
    """
    if logprobs.shape != old_logprobs.shape or logprobs.shape != mask.shape:
        raise ValueError(
            f"logprobs {tuple(logprobs.shape)}, old_logprobs {tuple(old_logprobs.shape)} and "
            f"mask {tuple(mask.shape)} must have the same (rows, tokens) shape"
        )
    if advantages.shape == logprobs.shape[:1]:
        advantages = advantages.unsqueeze(-1)
    elif advantages.shape != logprobs.shape:
        raise ValueError(
            f"advantages has shape {tuple(advantages.shape)}; expected per row {tuple(logprobs.shape[:1])} "
            f"or per token {tuple(logprobs.shape)}"
        )
    advantages = torch.where(mask != 0, advantages, torch.zeros_like(advantages))
    high = clip_ratio if clip_ratio_high is None else clip_ratio_high
    log_ratio = _masked_log_ratio(logprobs, old_logprobs, mask)
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip_ratio, 1.0 + high)
    losses = torch.maximum(unclipped, clipped)
    if clip_ratio_c is not None:
        losses = torch.where(advantages < 0, torch.minimum(losses, -clip_ratio_c * advantages), losses)
    loss = masked_mean(losses, mask, token_count=token_count)
    with torch.no_grad():
        stats = {
            "clip_fraction": masked_mean((clipped > unclipped).float(), mask).item(),
            "approx_kl": masked_mean(ratio - 1.0 - log_ratio, mask).item(),
            "ratio_mean": masked_mean(ratio, mask).item(),
        }
    return loss, stats


def kl_penalty(
    logprobs: Tensor, ref_logprobs: Tensor, mask: Tensor, clamp: float | None = None, token_count: float | None = None
) -> Tensor:
    """k3 estimate of KL(policy || reference), token-mean: ``exp(d) - d - 1`` with ``d = ref - logprobs`` (>= 0).

    ``d`` is first clamped to +-:data:`LOG_RATIO_LIMIT`; with ``clamp`` each token's term is clamped to
    ``[-clamp, clamp]`` (it is >= 0, so in effect bounded above), no gradient where the bound is active.
    """
    diff = _masked_log_ratio(ref_logprobs, logprobs, mask).clamp(-LOG_RATIO_LIMIT, LOG_RATIO_LIMIT)
    terms = torch.exp(diff) - diff - 1.0
    if clamp is not None:
        terms = terms.clamp(-clamp, clamp)
    return masked_mean(terms, mask, token_count=token_count)


def entropy_from_logits(logits: Tensor) -> Tensor:
    """Entropy per position over the last (vocabulary) axis, in float32 (finite logits expected).

    ``H = logsumexp(z) - sum_v softmax(z)_v * z_v``, stable for large logits.
    """
    logits = logits.float()
    return torch.logsumexp(logits, dim=-1) - (torch.softmax(logits, dim=-1) * logits).sum(dim=-1)


def clipped_value_loss(
    values: Tensor,
    old_values: Tensor,
    returns: Tensor,
    mask: Tensor | None,
    clip_range: float = 0.2,
    count: float | None = None,
) -> Tensor:
    """PPO value loss ``0.5 * max((V - R)^2, (clip(V, V_old - c, V_old + c) - R)^2)``, mean (masked if given).

    ``count`` replaces the number of values (or the mask's count) as the denominator, like ``token_count``."""
    clipped = old_values + torch.clamp(values - old_values, -clip_range, clip_range)
    losses = 0.5 * torch.maximum((values - returns) ** 2, (clipped - returns) ** 2)
    if mask is None:
        mask = torch.ones_like(losses)
    return masked_mean(losses, mask, token_count=count)
