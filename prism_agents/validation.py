"""The validation pass: a loaded config checked against the components and the data, before any work.

:func:`prism_agents.config.load_config` checks keys, types and value ranges and
imports no component. :func:`check_config` is where the config meets the
registries: every name a run will look up (environment, expert, splits, prompt
template, router and its params, generator, RL learner, metric-sink packages)
is checked, plug-in classes are imported and checked against their base class
and contract, and the data of the splits the run will play is looked for. The
first problem raises :class:`~prism_agents.config.ConfigError` naming the
source, the key path and, for a name, the closest valid one::

    experiments/alfworld.yaml with command-line overrides: eval.split: 'eval_out_of_distributon' is not
    a split of environment 'alfworld'; known: ... (did you mean 'eval_out_of_distribution'?)

(``rl.advantage`` and the other fixed choices are checked by the loader, with the
same suggestion.) Names are checked before any class is imported, the data after
every name, and the classes whose modules load torch (generators, learners) last,
so that a typo is reported in a fraction of a second.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from prism_agents.config import ConfigError, RunConfig
from prism_agents.config.base import ConfigValueError, did_you_mean
from prism_agents.config.params import build_params
from prism_agents.config.rl import RLConfig
from prism_agents.registry import ENVIRONMENTS, GENERATORS, LEARNERS, ROUTERS, Registry, RegistryError

if TYPE_CHECKING:
    from prism_agents.environments.base import TextEnv


EVALUATION_STAGES = ("eval", "report")
"""Stages that play only ``eval.split`` (every other stage plays the tasks of ``collect.split``)."""


def check_config(config: RunConfig, source: str, stages: Collection[str] | None = None) -> None:
    """Raise :class:`ConfigError` (``"<source>: <key path>: <message>"``) on the first name, plug-in or data
    folder of ``config`` that the run could not use; ``source`` names where the config came from, ``stages``
    the stages that will run (None: all the config plans), which decide whose splits need data."""
    try:
        _check(config, planned_splits(config, stages))
    except ConfigValueError as error:
        raise ConfigError(f"{source}: {error.field}: {error.message}") from None


def planned_splits(config: RunConfig, stages: Collection[str] | None = None) -> dict[str, str]:
    """Key path -> split, for the splits ``stages`` (None: every planned stage) play: ``collect.split`` unless
    the run evaluates the base model only (``eval.policy=base``) or only evaluation stages run, and ``eval.split``."""
    collects = config.eval.policy != "base" and (stages is None or not set(stages) <= set(EVALUATION_STAGES))
    return ({"collect.split": config.collect.split} if collects else {}) | {"eval.split": config.eval.split}


def _check(config: RunConfig, splits: dict[str, str]) -> None:
    named = (
        (ENVIRONMENTS, "environment.name", config.environment.name),
        (ROUTERS, "router.name", config.router.name),
        (GENERATORS, "generator.name", config.generator.name),
        (LEARNERS, "rl.learner", config.rl.learner),
    )
    for registry, key, name in named:
        _check_name(registry, key, name)
    env_class = _check_environment(config, splits)
    _check_template(config)
    _check_router(config)
    _check_logging(config)
    _check_cluster(config)
    _check_data(config, env_class, splits)
    _check_generator(config)
    _check_learner(config)


def _check_name(registry: Registry, key: str, name: str) -> None:
    try:
        registry.check_name(name)
    except RegistryError as error:
        raise ConfigValueError(key, str(error)) from None


def _component(registry: Registry, key: str, name: str, base: type) -> type:
    """The class ``name`` resolves to, checked to be a subclass of ``base``."""
    try:
        cls = registry.get(name)
    except RegistryError as error:
        raise ConfigValueError(key, str(error)) from None
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise ConfigValueError(key, f"{name!r} resolves to {cls!r}, which is not a subclass of {_qualified(base)}")
    return cls


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _require_concrete(cls: type, key: str, base: type) -> None:
    abstract = sorted(getattr(cls, "__abstractmethods__", ()))
    if abstract:
        raise ConfigValueError(
            key, f"{_qualified(cls)} does not implement {', '.join(abstract)} (abstract in {_qualified(base)}); write them"
        )


def _check_choice(value: str, choices: tuple[str, ...] | list[str], key: str, what: str) -> None:
    if value not in choices:
        raise ConfigValueError(
            key, f"{value!r} is not {what}; known: {', '.join(choices) or '(none)'}{did_you_mean(value, choices)}"
        )


def _check_environment(config: RunConfig, splits: dict[str, str]) -> type[TextEnv]:
    """The environment class, with the expert, params and the names of ``splits`` checked against it."""
    from prism_agents.environments.base import TextEnv

    settings = config.environment
    env_class = _component(ENVIRONMENTS, "environment.name", settings.name, TextEnv)
    _require_concrete(env_class, "environment.name", TextEnv)
    if "collect.split" in splits and not env_class.experts:
        raise ConfigValueError(
            "environment.expert",
            f"environment {settings.name!r} offers no expert, so the collect stage has no demonstrations to play; "
            "evaluate the base model only (eval.policy=base) or give the environment class an expert",
        )
    if env_class.experts:
        _check_choice(settings.expert, env_class.experts, "environment.expert", f"an expert of environment {settings.name!r}")
    try:
        params = env_class.params(settings)
    except ConfigValueError as error:
        raise ConfigValueError(f"environment.{error.field}", error.message) from None
    known = env_class.split_names(params)
    for key, split in splits.items():
        _check_choice(split, known, key, f"a split of environment {settings.name!r}")
    return env_class


def _check_data(config: RunConfig, env_class: type[TextEnv], splits: dict[str, str]) -> None:
    from prism_agents.environments.base import EnvironmentDataError

    for split in dict.fromkeys(splits.values()):
        try:
            env_class.check_data(config.environment, split)
        except EnvironmentDataError as error:
            raise ConfigValueError("environment.data_path", str(error)) from None


def _check_template(config: RunConfig) -> None:
    from prism_agents.policies.templates import environment_template, template_names

    name = config.prompt.template
    if not name:
        if environment_template(config.environment.name) is None:
            raise ConfigValueError(
                "prompt.template",
                f"is empty, so the environment's own template is used, but environment {config.environment.name!r} "
                f"declares none (prompt_template on its class); name one of: {', '.join(template_names())}",
            )
        return
    _check_choice(name, template_names(), "prompt.template", "a prompt template")


def _check_router(config: RunConfig) -> None:
    from prism_agents.routers.base import Router, contract_problem

    settings = config.router
    cls = _component(ROUTERS, "router.name", settings.name, Router)
    problem = contract_problem(cls)
    if problem is not None:
        raise ConfigValueError("router.name", problem)
    try:
        params = build_params(cls.params_class, settings.params, f"router {cls.__name__}")
    except ConfigValueError as error:
        raise ConfigValueError(f"router.{error.field}", error.message) from None
    try:
        cls(settings, params)
    except Exception as error:
        raise ConfigValueError("router.name", f"{_qualified(cls)}(config, params) failed: {error}") from None


def _check_logging(config: RunConfig) -> None:
    for package in config.logging.packages:
        if importlib.util.find_spec(package) is None:
            raise ConfigValueError(
                f"logging.{package}", f"is true, but the package {package!r} is not installed (pip install {package})"
            )


def _check_cluster(config: RunConfig) -> None:
    cluster = config.cluster
    if not cluster.uses_ray:
        return
    if importlib.util.find_spec("ray") is None:
        raise ConfigValueError(
            "cluster.backend", "is 'ray', but the package 'ray' is not installed (pip install 'prism-agents[cluster]')"
        )
    if cluster.tensor_parallel_size > 1 and config.generator.name != "vllm":
        raise ConfigValueError(
            "cluster.tensor_parallel_size",
            f"is {cluster.tensor_parallel_size}, which only the vllm generator supports (generator.name is "
            f"{config.generator.name!r})",
        )
    if cluster.colocate and config.generator.gpu_memory_utilization > cluster.generator_gpus:
        raise ConfigValueError(
            "generator.gpu_memory_utilization",
            f"is {config.generator.gpu_memory_utilization}, more than the GPU share each colocated engine gets "
            f"(cluster.generator_gpus={cluster.generator_gpus}); set it at most that share",
        )


def _check_generator(config: RunConfig) -> None:
    from prism_agents.policies.generators.base import Generator

    cls = _component(GENERATORS, "generator.name", config.generator.name, Generator)
    _require_concrete(cls, "generator.name", Generator)


def _check_learner(config: RunConfig) -> None:
    from prism_agents.learners.base import Learner

    cls = _component(LEARNERS, "rl.learner", config.rl.learner, Learner)
    if getattr(cls, "config_class", None) is not RLConfig:
        raise ConfigValueError(
            "rl.learner",
            f"{config.rl.learner!r} is not an RL learner (its config_class is {_name_of(getattr(cls, 'config_class', None))}"
            f", not the rl section's {_qualified(RLConfig)}); use 'grpo', 'ppo' or an RL plug-in",
        )
    _require_concrete(cls, "rl.learner", Learner)


def _name_of(value: Any) -> str:
    return _qualified(value) if isinstance(value, type) else repr(value)
