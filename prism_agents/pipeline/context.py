"""What the stages of one run share: the folder, logs, and the expensive objects built at most once."""

from __future__ import annotations

import logging
from types import TracebackType

from prism_agents.config import RunConfig
from prism_agents.config.generation import SamplingConfig
from prism_agents.pipeline.compute import ComputeLedger
from prism_agents.pipeline.metrics import MetricsLog
from prism_agents.pipeline.run_folder import RunFolder
from prism_agents.policies.generators import Generator, build_generator
from prism_agents.policies.lora import Policy
from prism_agents.policies.prompts import PromptBuilder

log = logging.getLogger(__name__)


class RunContext:
    """The run folder, ``metrics.jsonl``, ``compute.json``, the training-side policy and the generator.

    The policy and the generator are built on first use (a stage that needs
    neither, such as ``collect``, never loads a model) and closed at the end.
    """

    def __init__(self, folder: RunFolder) -> None:
        self.folder = folder
        self.config: RunConfig = folder.config
        self.metrics = MetricsLog(folder.metrics)
        self.compute = ComputeLedger(folder.compute)
        self._policy: Policy | None = None
        self._generator: Generator | None = None

    def policy(self) -> Policy:
        """The training-side policy: the base model with the run's newest adapter (a fresh one before SFT)."""
        if self._policy is None:
            version = self.folder.latest_adapter_version()
            adapter = self.folder.adapter(version) if version is not None else None
            log.info("loading the policy (%s, adapter %s)", self.config.model.name, adapter or "new")
            self._policy = Policy.load(self.config.model, self.config.lora, adapter_path=adapter)
        return self._policy

    def prompts(self) -> PromptBuilder:
        """The prompt builder for this run's environment and the policy's tokenizer."""
        return PromptBuilder(self.policy().tokenizer, self.config.prompt, self.config.environment.name)

    def max_prompt_tokens(self, sampling: SamplingConfig) -> int:
        """Longest prompt that leaves room for ``sampling.max_new_tokens`` in the model's and the engine's context."""
        context_tokens = min(self.config.model.max_seq_len, self.config.generator.max_model_len)
        return context_tokens - sampling.max_new_tokens

    def generator(self) -> Generator:
        """The generator serving the policy's base model (started once per run)."""
        if self._generator is None:
            log.info("starting the %s generator", self.config.generator.name)
            self._generator = build_generator(self.config.generator, self.policy().base_model_path)
        return self._generator

    def __enter__(self) -> RunContext:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._generator is not None:
            self._generator.close()
            self._generator = None
