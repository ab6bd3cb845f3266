"""What the stages of one run share: the folder, logs, and the expensive objects built at most once."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from types import TracebackType

import torch

from prism_agents.config import RunConfig, flat_config
from prism_agents.config.cluster import ClusterConfig
from prism_agents.config.generation import GeneratorConfig, SamplingConfig
from prism_agents.environments import EnvSpec, open_env_pool, select_tasks
from prism_agents.environments.pool import SlotPool
from prism_agents.io import read_jsonl
from prism_agents.pipeline.compute import ComputeLedger, StageCompute
from prism_agents.pipeline.metric_sinks import build_sinks
from prism_agents.pipeline.metrics import MetricsLog
from prism_agents.pipeline.rollout import play_episodes
from prism_agents.pipeline.run_folder import RunFolder
from prism_agents.policies.generators import Generator, build_generator
from prism_agents.policies.generators.base import derived_seed
from prism_agents.policies.lora import Policy
from prism_agents.policies.prompts import PromptBuilder
from prism_agents.types import RoutingRecord, Task, Trajectory

log = logging.getLogger(__name__)


class SharedGenerators:
    """The started generator, kept across the runs that use it. A run owns one; ``prism-agents compare``
    passes one to all its runs, so runs that differ only in per-request settings (``generator.seed``,
    ``generator.sampling``) share one engine. At most one engine lives at a time: a run that needs
    other engine settings closes the previous engine first, so GPU memory never holds two. Every run
    sets what is served (adapter or base model) and reseeds the sampling stream itself.

    With ``cluster.backend: ray`` the generator is a
    :class:`~prism_agents.cluster.generator_replicas.ReplicaGenerator` over ``cluster.generator_replicas``
    actors, on the Ray ``cluster`` names: connected here for as long as the generator lives, unless this
    process is connected already."""

    def __init__(self) -> None:
        self._key: str | None = None
        self._generator: Generator | None = None
        self._ray = ExitStack()
        """The Ray connection the replica generator runs on (empty with the local backend)."""

    def get(
        self, config: GeneratorConfig, base_model_path: str | Path, cluster: ClusterConfig | None = None
    ) -> Generator:
        """A generator with ``config``'s engine settings on ``base_model_path``, placed as ``cluster`` says
        (default: the local backend), started on first request."""
        cluster = cluster or ClusterConfig()
        key = engine_key(config, base_model_path, cluster)
        # A replica generator outlives the Ray it ran on when a run that started that Ray has ended.
        if key != self._key or (cluster.uses_ray and not self._generator.connected()):  # type: ignore[union-attr]
            self.close()
            replicas = f" ({cluster.generator_replicas} Ray replicas)" if cluster.uses_ray else ""
            log.info("starting the %s generator%s", config.name, replicas)
            if config.num_threads:
                torch.set_num_threads(config.num_threads)  # before vLLM on CPU binds its threads
            self._generator = self._start(config, base_model_path, cluster)
            self._key = key
        assert self._generator is not None
        return self._generator

    def _start(self, config: GeneratorConfig, base_model_path: str | Path, cluster: ClusterConfig) -> Generator:
        if not cluster.uses_ray:
            return build_generator(config, base_model_path)
        from prism_agents.cluster.generator_replicas import ReplicaGenerator
        from prism_agents.cluster.runtime import ray_runtime

        self._ray.enter_context(ray_runtime(cluster))
        try:
            return ReplicaGenerator(config, base_model_path, cluster)
        except BaseException:
            self._ray.close()
            raise

    def close(self) -> None:
        """Stop the generator (and the Ray connection it was started on)."""
        if self._generator is not None:
            self._generator.close()
        self._ray.close()
        self._generator = None
        self._key = None


def engine_key(config: GeneratorConfig, base_model_path: str | Path, cluster: ClusterConfig | None = None) -> str:
    """What defines an engine: the base model and every generator setting except the per-request ones
    (``seed`` and ``sampling``, which each run applies through ``reseed`` and ``generate``), and with the Ray
    backend the whole ``cluster`` section (where the replicas run and how many)."""
    engine = dataclasses.replace(config, seed=0, sampling=SamplingConfig())
    placement = f"|{cluster}" if cluster is not None and cluster.uses_ray else ""
    return f"{Path(base_model_path).resolve()}|{engine}{placement}"


class RunContext:
    """The run folder, ``metrics.jsonl``, ``compute.json``, the training-side policy and the generator.

    The policy and the generator are built on first use (a stage that needs
    neither, such as ``collect``, never loads a model). The generator is closed
    at the end unless it comes from ``shared`` generators that outlive the run.
    The environment pool of the last rollout stays open for the next rollout on
    the same recipe (the RL iterations), so its workers start once.
    """

    def __init__(self, folder: RunFolder, shared: SharedGenerators | None = None) -> None:
        self.folder = folder
        self.config: RunConfig = folder.config
        self.metrics = MetricsLog(folder.metrics, lambda: build_sinks(self.config.logging, folder.path, flat_config(self.config)))
        self.compute = ComputeLedger(folder.compute)
        self._generators = shared or SharedGenerators()
        self._owns_generators = shared is None
        self._policy: Policy | None = None
        self._generator: Generator | None = None
        self._pool: SlotPool | None = None
        """The environment pool of the last rollout, open until a rollout needs another recipe or slot count."""

    def policy(self) -> Policy:
        """The training-side policy: the base model with the run's committed adapter (a fresh one before SFT)."""
        if self._policy is None:
            adapter = self.folder.current_adapter()
            log.info("loading the policy (%s, adapter %s)", self.config.model.name, adapter or "new")
            self._policy = Policy.load(self.config.model, self.config.lora, adapter_path=adapter)
        return self._policy

    def forget_policy(self) -> None:
        """Drop the loaded policy; the next :meth:`policy` call loads the run's committed adapter again."""
        self._policy = None

    def prompts(self) -> PromptBuilder:
        """The prompt builder for this run's environment and the policy's tokenizer."""
        return PromptBuilder(self.policy().tokenizer, self.config.prompt, self.config.environment.name)

    def max_prompt_tokens(self, sampling: SamplingConfig) -> int:
        """Longest prompt that leaves room for ``sampling.max_new_tokens`` in the model's and the engine's context."""
        context_tokens = min(self.config.model.max_seq_len, self.config.generator.max_model_len)
        return context_tokens - sampling.max_new_tokens

    def generator(self, stream: str | None = None) -> Generator:
        """The generator serving the policy's base model (started once per run, or shared across runs).

        With ``stream`` (one name per rollout of the run, such as ``eval test``), its sampling restarts
        on a random stream derived from ``generator.seed`` and ``stream``, so the rollout samples the
        same whichever runs or attempts used the engine before.
        """
        if self._generator is None:
            self._generator = self._generators.get(self.config.generator, self.policy().base_model_path, self.config.cluster)
        if stream is not None:
            self._generator.reseed(derived_seed(self.config.generator.seed, stream))
        return self._generator

    def env_spec(self, split: str, expert: bool = False, max_steps: int | None = None) -> EnvSpec:
        """The recipe of this run's environment on ``split`` (with another step limit if given)."""
        environment = self.config.environment
        if max_steps is not None:
            environment = dataclasses.replace(environment, max_steps=max_steps)
        return EnvSpec(environment, split, expert=expert)

    def chosen_tasks(self, spec: EnvSpec, count: int) -> list[Task]:
        """The ``count`` tasks of ``spec``'s split that the run's seed picks (0 = all)."""
        tasks = spec.tasks()
        if not tasks:
            environment = spec.config
            raise RuntimeError(
                f"environment {environment.name!r}: split {spec.split!r} has no tasks "
                f"(data: {environment.data_path or 'the default data folder'})"
            )
        return select_tasks(tasks, count or len(tasks), self.config.seed)

    def demonstrations(self) -> list[Trajectory]:
        """Every expert demonstration the ``collect`` stage wrote, won or not."""
        return [Trajectory.from_dict(record) for record in read_jsonl(self.folder.trajectories)]

    def routing_records(self) -> list[RoutingRecord]:
        """Every line of ``routing.jsonl`` (all rounds)."""
        return [RoutingRecord.from_dict(record) for record in read_jsonl(self.folder.routing)]

    def serve(self, trained: bool) -> tuple[str, str]:
        """Make the generator serve the committed adapter (``trained``) or the base model; returns the episode
        source (``policy:vN`` / ``policy:base``) and a description for reports.

        ``trained`` with no adapter saved yet (nothing was routed to SFT) serves the base model and says so.
        """
        generator = self.generator()
        version = self.folder.current_adapter_version() if trained else None
        if version is not None:
            generator.load_adapter(self.folder.adapter(version), version, reference=self.policy())
            return f"policy:v{version}", f"adapter v{version}"
        generator.use_base_model()
        if trained:
            log.warning("no adapter was trained in this run: serving the base model")
            return "policy:base", "base model (no adapter: nothing was trained in this run)"
        return "policy:base", "base model (no adapter)"

    def play(
        self,
        spec: EnvSpec,
        tasks: Sequence[Task],
        sampling: SamplingConfig,
        source: str,
        spent: StageCompute,
        description: str,
        stream: str | None = None,
    ) -> list[Trajectory]:
        """Episodes of the served policy on ``tasks`` (``eval.batch_size`` in lockstep, on the pool of
        ``cluster.backend``), counted in ``spent``; sampled on the random stream named ``stream`` (by default
        ``description``)."""
        pool = self._env_pool(spec, min(self.config.eval.batch_size, len(tasks)))
        try:
            return play_episodes(
                pool, self.generator(stream=stream or description), self.prompts(), tasks, sampling, source, spent,
                max_prompt_tokens=self.max_prompt_tokens(sampling), description=description,
            )
        except BaseException:
            self._close_env_pool()  # its workers may still be busy with the interrupted batch
            raise

    def _env_pool(self, spec: EnvSpec, num_slots: int) -> SlotPool:
        """The open pool if it was opened for ``spec`` and ``num_slots``, else a new one (the old one closed)."""
        if self._pool is None or (self._pool.spec, self._pool.num_slots) != (spec, num_slots):
            self._close_env_pool()
            self._pool = open_env_pool(spec, num_slots, self.config.cluster)
        return self._pool

    def _close_env_pool(self) -> None:
        if self._pool is not None:
            self._pool.close()
        self._pool = None

    def __enter__(self) -> RunContext:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._close_env_pool()
        self.metrics.close()
        if self._owns_generators:
            self._generators.close()
        self._generator = None
