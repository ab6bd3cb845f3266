"""Supervised fine-tuning of the LoRA adapter on expert trajectories.

Read top to bottom, one run of :meth:`SFTLearner.train` is:

1. cut every trajectory into examples with the run's :class:`PromptBuilder`
   (token ids + a mask that is 1 on action tokens only); an example longer than
   ``model.max_seq_len`` is cut from the front (the token kernel's
   :func:`~prism_agents.learners.tokens.fit_example`: the system
   prompt stays when it fits, the oldest history goes, the last actions stay
   whole) and one whose last action alone does not fit is dropped; both are
   counted and logged as a warning;
2. each epoch, group examples of similar length into batches whose padded size
   (examples x longest) stays within ``batch_tokens`` and whose padding stays within
   :data:`~prism_agents.learners.tokens.MAX_PADDING_SHARE`, in a seeded order;
3. per batch: the mean next-token cross-entropy over the batch's action
   tokens (:func:`~prism_agents.learners.tokens.action_token_loss`), backward, global-norm clipping, an
   AdamW step on the adapter's parameters with the scheduled learning rate
   (:func:`learning_rate_factor`: linear warmup, then cosine / linear / constant).

Under data parallelism (:attr:`SFTLearner.parallel`, set by a distributed learner worker) every worker draws the
same batches, runs its share of each batch's rows through DDP with the batch's action-token count as the
denominator, and reports the batch's metrics (:mod:`~prism_agents.learners.parallel`).
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Sequence

import torch
from tqdm.auto import tqdm

from prism_agents.config.training import SFTConfig
from prism_agents.learners.base import Learner, StepCallback
from prism_agents.learners.parallel import LOCAL, DataParallel
from prism_agents.learners.tokens import action_token_loss, collate, fit_example, length_batches, padding_share
from prism_agents.policies.lora import Policy
from prism_agents.policies.prompts import PromptBuilder, TrainingExample
from prism_agents.registry import LEARNERS
from prism_agents.types import Trajectory

log = logging.getLogger(__name__)


def learning_rate_factor(step: int, total_steps: int, warmup_steps: int, schedule: str) -> float:
    """Multiplier of the peak learning rate at optimizer step ``step`` (0-based)."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    if schedule == "linear":
        return 1.0 - progress
    return 1.0


@LEARNERS.register("sft")
class SFTLearner(Learner):
    """Multi-turn SFT: loss on action tokens only, length-bucketed batches, AdamW on the LoRA weights."""

    config_class = SFTConfig
    parallel: DataParallel = LOCAL
    """This learner's place among data-parallel workers (one process by default)."""

    def train(
        self,
        policy: Policy,
        data: Sequence[Trajectory],
        *,
        prompts: PromptBuilder,
        on_step: StepCallback | None = None,
    ) -> dict[str, float]:
        """Train on the expert trajectories ``data``; per-step metrics go to ``on_step``.

        Step metrics: step, epoch, loss, lr, grad_norm, tokens (non-padding), action_tokens,
        examples. Returned: loss_mean (action-token weighted over the run), loss_last_epoch,
        steps, examples, truncated_examples (cut to ``model.max_seq_len``), dropped_examples (their
        action alone is longer), tokens_trained, action_tokens, padding_share (of the batches' padded tokens),
        wall_s, tokens_per_s.
        """
        examples, truncated, dropped = self.prepare_examples(policy, data, prompts)
        counts = {"truncated_examples": truncated, "dropped_examples": dropped}
        return self.train_examples(policy, examples, on_step=on_step) | counts

    @staticmethod
    def prepare_examples(
        policy: Policy, data: Sequence[Trajectory], prompts: PromptBuilder
    ) -> tuple[list[TrainingExample], int, int]:
        """Examples of ``data`` fitted to ``policy.max_seq_len`` (:func:`fit_example`), how many were cut, and how
        many were dropped because even their last action does not fit; a warning says so when any was."""
        limit = policy.max_seq_len
        head = prompts.system_ids()
        examples, truncated, dropped, total = [], 0, 0, 0
        for trajectory in data:
            for example in prompts.examples(trajectory):
                total += 1
                fitted, _ = fit_example(example, limit, head)
                if fitted is None:
                    dropped += 1
                    continue
                truncated += fitted is not example
                if sum(fitted.loss_mask[1:]):
                    examples.append(fitted)
        if truncated or dropped:
            log.warning(
                "sft: %d of %d examples are longer than model.max_seq_len=%d: %d cut from the front (oldest history "
                "dropped), %d dropped because their action alone does not fit; raise model.max_seq_len or shorten "
                "the prompt (prompt.window, prompt.max_admissible_actions)",
                truncated + dropped, total, limit, truncated, dropped,
            )
        if not examples and dropped:
            raise ValueError(
                f"no SFT example fits model.max_seq_len={limit}: all {dropped} have a last action longer than that; "
                "raise model.max_seq_len"
            )
        if not examples:
            raise ValueError("no SFT examples with action tokens: the SFT trajectories are empty")
        return examples, truncated, dropped

    def train_examples(
        self, policy: Policy, examples: Sequence[TrainingExample], on_step: StepCallback | None = None
    ) -> dict[str, float]:
        """The optimisation loop on ready-made examples (see the module docstring)."""
        config = self.config
        torch.manual_seed(config.seed)
        rng = random.Random(config.seed)
        lengths = [len(example.input_ids) for example in examples]
        counts = [sum(example.loss_mask[1:]) for example in examples]
        layout = length_batches(lengths, config.batch_tokens, random.Random(0))
        steps_per_epoch = len(layout)
        total_steps = steps_per_epoch * config.epochs
        warmup_steps = math.ceil(config.warmup_ratio * total_steps)
        parameters = policy.trainable_parameters()
        optimizer = torch.optim.AdamW(
            parameters,
            lr=config.learning_rate,
            betas=(config.adam_beta1, config.adam_beta2),
            weight_decay=config.weight_decay,
        )
        pad_id = policy.tokenizer.pad_token_id
        model = self.parallel.wrap(policy.model)
        max_norm = config.grad_clip if config.grad_clip > 0 else math.inf
        loss_sum = tokens_trained = action_tokens = 0.0
        epoch_loss_sum = epoch_action_tokens = 0.0
        step = 0
        start = time.perf_counter()
        policy.model.train()
        progress = tqdm(total=total_steps, desc="sft", unit="step", disable=not config.progress)
        try:
            for epoch in range(config.epochs):
                epoch_loss_sum = epoch_action_tokens = 0.0
                for batch in length_batches(lengths, config.batch_tokens, rng):
                    factor = learning_rate_factor(step, total_steps, warmup_steps, config.lr_schedule)
                    lr = config.learning_rate * factor
                    for group in optimizer.param_groups:
                        group["lr"] = lr
                    share = self.parallel.share(batch)
                    ids, attention, mask = collate([examples[index] for index in share.rows], pad_id, policy.device)
                    count = sum(counts[index] for index in batch)
                    loss, _ = action_token_loss(model, ids, attention, mask, token_count=count)
                    optimizer.zero_grad(set_to_none=True)
                    (loss * share.weight).backward()
                    grad_norm = float(torch.nn.utils.clip_grad_norm_(parameters, max_norm))
                    optimizer.step()
                    step += 1
                    value = self.parallel.combine({"loss": loss.item()}, share.present)["loss"]
                    tokens = sum(lengths[index] for index in batch)
                    loss_sum += value * count
                    epoch_loss_sum += value * count
                    action_tokens += count
                    epoch_action_tokens += count
                    tokens_trained += tokens
                    metrics = {
                        "step": step,
                        "epoch": epoch,
                        "loss": value,
                        "lr": lr,
                        "grad_norm": grad_norm,
                        "tokens": tokens,
                        "action_tokens": count,
                        "examples": len(batch),
                    }
                    if on_step is not None:
                        on_step(metrics)
                    progress.update(1)
                    progress.set_postfix(loss=f"{value:.3f}", lr=f"{lr:.2e}")
        finally:
            progress.close()
            policy.model.eval()
        wall = time.perf_counter() - start
        return {
            "loss_mean": loss_sum / action_tokens,
            "loss_last_epoch": epoch_loss_sum / epoch_action_tokens,
            "steps": step,
            "examples": len(examples),
            "tokens_trained": tokens_trained,
            "action_tokens": action_tokens,
            "padding_share": padding_share(lengths, layout),
            "wall_s": wall,
            "tokens_per_s": tokens_trained / wall,
        }
