"""The run configuration: every section of an experiment YAML, typed.

The YAML mirrors this tree (``model.name``, ``sft.epochs``, ...). Each section's
fields are documented where the section is defined.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from prism_agents.config.base import require, require_one_of
from prism_agents.config.cluster import ClusterConfig
from prism_agents.config.environment import EnvironmentConfig
from prism_agents.config.generation import GeneratorConfig, SamplingConfig
from prism_agents.config.model import LoraConfig, ModelConfig
from prism_agents.config.rl import RLConfig
from prism_agents.config.routing import RouterConfig
from prism_agents.config.training import PromptConfig, SFTConfig


@dataclass
class CollectConfig:
    """Expert demonstrations gathered in the ``collect`` stage."""

    split: str = "train"
    """Environment split the demonstrations are played on."""
    num_tasks: int = 32
    """How many tasks of the split to play (chosen by ``seed``); 0 means every task of the split."""

    def validate(self) -> None:
        require(self.num_tasks >= 0, "num_tasks", f"must be 0 (all) or more (got {self.num_tasks})")


@dataclass
class EvalConfig:
    """Evaluation of the policy in the ``eval`` stage."""

    split: str = "eval_out_of_distribution"
    """Environment split evaluated on (ALFWorld: eval_out_of_distribution = valid_unseen, eval_in_distribution = valid_seen)."""
    num_tasks: int = 16
    """How many tasks of the split to play (chosen by ``seed``); 0 means every task of the split."""
    max_steps: Optional[int] = None
    """Step limit of an evaluation episode; None uses ``environment.max_steps``."""
    policy: str = "trained"
    """``trained`` evaluates the adapter version the run committed last, ``base`` the base model without an adapter."""
    batch_size: int = 16
    """Episodes stepped together in lockstep (one batched generation call per step)."""
    sampling: SamplingConfig = field(default_factory=lambda: SamplingConfig(max_new_tokens=32, temperature=0.0))
    """Decoding of evaluation episodes: greedy (temperature 0) by default; an action needs few tokens."""

    def validate(self) -> None:
        require(self.num_tasks >= 0, "num_tasks", f"must be 0 (all) or more (got {self.num_tasks})")
        require(self.max_steps is None or self.max_steps >= 1, "max_steps", f"must be at least 1 (got {self.max_steps})")
        require_one_of(self.policy, ("trained", "base"), "policy")
        require(self.batch_size >= 1, "batch_size", f"must be at least 1 (got {self.batch_size})")


@dataclass
class LoggingConfig:
    """Where metrics go besides ``metrics.jsonl``, which is always written. Every metric is named
    ``<stage>/<split>/<name>`` (e.g. ``sft/train/loss``, ``eval/eval_out_of_distribution/success_rate``)."""

    tensorboard: bool = False
    """Write TensorBoard event files to ``<run folder>/tensorboard`` (``tensorboard --logdir <run folder>``)."""
    wandb: bool = False
    """Log to Weights & Biases (needs ``pip install wandb`` and a login, or ``WANDB_MODE=offline``)."""
    wandb_project: str = "prism-agents"
    """Weights & Biases project of the run (the run is named after the run folder)."""
    mlflow: bool = False
    """Log to MLflow (needs ``pip install mlflow``; the tracking server or store comes from
    ``MLFLOW_TRACKING_URI``, else MLflow's own default)."""
    mlflow_experiment: str = "prism-agents"
    """MLflow experiment of the run (the run is named after the run folder)."""

    @property
    def packages(self) -> tuple[str, ...]:
        """The packages the enabled sinks import (the validation pass checks that they are installed)."""
        return tuple(package for package in ("wandb", "mlflow") if getattr(self, package))


@dataclass
class RunConfig:
    """A whole experiment: what to train, on what, and how to judge it."""

    name: str = "run"
    """Run name; the run folder is ``<output_dir>/<name>-<timestamp>``."""
    output_dir: str = "runs"
    """Folder that holds run folders (relative paths are relative to the working directory)."""
    seed: int = 0
    """The run's seed: it picks the collect and eval tasks and is the value of every other seed not set on
    its own (``lora.init_seed``, ``router.seed``, ``sft.seed``, ``rl.seed``, ``generator.seed``), so one
    number fixes task order, routing, training order and sampling."""
    model: ModelConfig = field(default_factory=ModelConfig)
    """Base model."""
    lora: LoraConfig = field(default_factory=LoraConfig)
    """The LoRA adapter every learner trains."""
    environment: EnvironmentConfig = field(default_factory=EnvironmentConfig)
    """The benchmark environment."""
    prompt: PromptConfig = field(default_factory=PromptConfig)
    """How episodes are shown to the policy."""
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    """The engine that serves the policy for rollouts and evaluation."""
    collect: CollectConfig = field(default_factory=CollectConfig)
    """Expert demonstrations."""
    router: RouterConfig = field(default_factory=RouterConfig)
    """Which demonstrations go to SFT and which to RL."""
    sft: SFTConfig = field(default_factory=SFTConfig)
    """Supervised fine-tuning on the demonstrations."""
    rl: RLConfig = field(default_factory=RLConfig)
    """Reinforcement learning on the RL share's tasks, after SFT."""
    eval: EvalConfig = field(default_factory=EvalConfig)
    """Evaluation on a held-out split."""
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    """Metric sinks besides ``metrics.jsonl``."""
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    """Where the environments, the generator and the learner run: this process (``local``) or Ray actors."""

    def validate(self) -> None:
        require(bool(self.name.strip()), "name", "must not be empty")
        require("/" not in self.name, "name", f"must not contain '/' (got {self.name!r})")
