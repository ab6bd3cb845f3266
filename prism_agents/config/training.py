"""Config sections for how the policy is prompted and how the SFT learner trains it."""

from __future__ import annotations

from dataclasses import dataclass

from prism_agents.config.base import require, require_one_of

HISTORY_MODES = ("window", "full")
LR_SCHEDULES = ("cosine", "linear", "constant")


@dataclass
class PromptConfig:
    """What the policy sees at each step (shared by training, probing and rollouts)."""

    template: str = ""
    """Prompt template name; empty means the environment's own template (``alfworld``, ...)."""
    history: str = "window"
    """``window``: one fresh prompt per step holding the last ``window`` steps as text;
    ``full``: the whole episode as one growing multi-turn conversation."""
    window: int = 3
    """With ``history: window``, how many previous (action, observation) pairs are shown."""
    max_admissible_actions: int = 50
    """At most this many admissible actions are listed, in the environment's order (a note says how
    many were left out); 0 lists none."""

    def validate(self) -> None:
        require_one_of(self.history, HISTORY_MODES, "history")
        require(self.window >= 0, "window", f"must be at least 0 (got {self.window})")
        require(
            self.max_admissible_actions >= 0,
            "max_admissible_actions",
            f"must be at least 0 (got {self.max_admissible_actions})",
        )


@dataclass
class SFTConfig:
    """Supervised fine-tuning of the LoRA adapter on expert trajectories (loss on action tokens only)."""

    epochs: int = 2
    """Passes over the SFT examples."""
    learning_rate: float = 2e-4
    """Peak learning rate of AdamW, reached at the end of warmup."""
    batch_tokens: int = 4096
    """Token budget of one optimizer step: examples of similar length are grouped so that
    (examples in batch) x (longest example) stays within it; a longer example is a batch of its own."""
    grad_clip: float = 1.0
    """Clip the global gradient norm to this value; 0 disables clipping."""
    warmup_ratio: float = 0.05
    """Fraction of all optimizer steps spent ramping the learning rate up linearly from 0."""
    lr_schedule: str = "cosine"
    """Learning rate after warmup: ``cosine`` or ``linear`` decay to 0, or ``constant``."""
    weight_decay: float = 0.0
    """AdamW decoupled weight decay on the adapter weights."""
    adam_beta1: float = 0.9
    """AdamW beta1."""
    adam_beta2: float = 0.999
    """AdamW beta2."""
    seed: int = 0
    """Seed for example order and adapter dropout (the same seed and data give the same adapter); unless set,
    the run's ``seed``."""
    progress: bool = True
    """Show a progress bar on the terminal."""

    def validate(self) -> None:
        require(self.epochs >= 1, "epochs", f"must be at least 1 (got {self.epochs})")
        require(self.learning_rate > 0, "learning_rate", f"must be positive (got {self.learning_rate})")
        require(self.batch_tokens >= 16, "batch_tokens", f"must be at least 16 (got {self.batch_tokens})")
        require(self.grad_clip >= 0, "grad_clip", f"must be at least 0 (got {self.grad_clip})")
        require(0.0 <= self.warmup_ratio < 1.0, "warmup_ratio", f"must be in [0, 1) (got {self.warmup_ratio})")
        require_one_of(self.lr_schedule, LR_SCHEDULES, "lr_schedule")
        require(self.weight_decay >= 0, "weight_decay", f"must be at least 0 (got {self.weight_decay})")
        require(0.0 <= self.adam_beta1 < 1.0, "adam_beta1", f"must be in [0, 1) (got {self.adam_beta1})")
        require(0.0 <= self.adam_beta2 < 1.0, "adam_beta2", f"must be in [0, 1) (got {self.adam_beta2})")
