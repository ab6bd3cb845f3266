"""Load a run config from YAML plus ``key=value`` overrides, checked before any work starts.

Unknown keys, values of the wrong type, missing required values and values out
of range all raise :class:`ConfigError` whose message names the source (the
YAML file or the command line) and the key path. Nothing here imports a
component: names of environments, routers, splits, ... are checked afterwards
by the validation pass (:func:`prism_agents.validation.check_config`).
"""

from __future__ import annotations

import dataclasses
import difflib
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from prism_agents.config.base import ConfigError, ConfigValueError
from prism_agents.config.schema import RunConfig

COMMAND_LINE = "command line"
DERIVED_SEEDS = ("lora.init_seed", "router.seed", "sft.seed", "rl.seed", "generator.seed")
"""Seeds that take the run's ``seed`` unless the YAML or the command line sets them."""
UNKNOWN_KEY = "unknown key"
MOVED_KEYS = {
    "environment.webshop": "moved: WebShop's settings are environment.params.* now (e.g. environment.params.catalog)",
    "environment.win_reward": "removed: environments return their native reward and rl.reward.win scales it for training",
    "generator.check_new_tokens": (
        "removed: the served-adapter check scores its probe prompt teacher-forced and generates no tokens; delete the key"
    ),
}
"""Keys of earlier releases -> where they went, for configs and run folders written before the change."""


def config_source(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> str:
    """How messages name a config loaded from ``path`` (None: the defaults) and ``overrides``."""
    return str(path or "defaults") + (" with command-line overrides" if overrides else "")


def load_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """The :class:`RunConfig` from a YAML file (or defaults when None) and overrides, with its keys, types and
    value ranges checked; names are checked against the components by :func:`prism_agents.validation.check_config`."""
    origin = config_source(path, overrides)
    merged = OmegaConf.structured(RunConfig)
    given: list[DictConfig] = []
    if path is not None:
        given.append(_read_yaml(Path(path)))
        merged = _merge(merged, given[-1], str(path))
    if overrides:
        given.append(_parse_overrides(overrides))
        merged = _merge(merged, given[-1], COMMAND_LINE)
    try:
        config = OmegaConf.to_object(merged)
    except OmegaConfBaseException as error:
        raise ConfigError(f"{origin}: {_key_of(error)}: {_reason_of(error)}") from None
    _derive_seeds(config, given)
    _validate_tree(config, prefix="", source=origin)
    return config


def flat_config(config: RunConfig) -> dict[str, Any]:
    """The config as ``{"sft.epochs": 3, ...}`` (lists and mappings kept as values), for tracking tools."""
    flat: dict[str, Any] = {}

    def visit(node: Any, prefix: str) -> None:
        for item in dataclasses.fields(node):
            value = getattr(node, item.name)
            if dataclasses.is_dataclass(value):
                visit(value, f"{prefix}{item.name}.")
            else:
                flat[prefix + item.name] = value

    visit(config, "")
    return flat


def _derive_seeds(config: RunConfig, given: list[DictConfig]) -> None:
    """Give every seed of :data:`DERIVED_SEEDS` that no source sets the run's ``seed``."""
    for key in DERIVED_SEEDS:
        if not any(OmegaConf.select(source, key) is not None for source in given):
            section, _, field_name = key.partition(".")
            setattr(getattr(config, section), field_name, config.seed)


def to_yaml(config: RunConfig) -> str:
    """The resolved config as YAML, loadable again with :func:`load_config`."""
    return OmegaConf.to_yaml(OmegaConf.structured(config))


def read_yaml_mapping(path: Path, kind: str = "config") -> dict[str, Any]:
    """The mapping a YAML file holds (empty file: empty mapping); ``kind`` names the file in errors."""
    if not path.is_file():
        raise ConfigError(f"{kind} file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte {error.start} is {error.object[error.start:error.start + 1]!r}); "
            "save the file as UTF-8"
        ) from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of {kind} keys, got {type(data).__name__}")
    return data


def _read_yaml(path: Path) -> DictConfig:
    return OmegaConf.create(read_yaml_mapping(path))


def _parse_overrides(overrides: list[str] | tuple[str, ...]) -> DictConfig:
    for item in overrides:
        key, sep, _ = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{COMMAND_LINE}: override {item!r} is not of the form key=value (e.g. sft.epochs=2)")
    try:
        return OmegaConf.from_dotlist(list(overrides))
    except OmegaConfBaseException as error:
        raise ConfigError(f"{COMMAND_LINE}: cannot parse overrides: {error}") from None


def _merge(base: DictConfig, update: DictConfig, source: str) -> DictConfig:
    try:
        return OmegaConf.merge(base, update)
    except OmegaConfBaseException as error:
        key, reason = _key_of(error), _reason_of(error)
        raise ConfigError(f"{source}: {key}: {reason}{_suggestion(key) if reason == UNKNOWN_KEY else ''}") from None


def _key_of(error: OmegaConfBaseException) -> str:
    return str(getattr(error, "full_key", None) or "(top level)")


def _reason_of(error: OmegaConfBaseException) -> str:
    message = str(getattr(error, "msg", None) or error).splitlines()[0]
    if "Key '" in message and "not in" in message:
        return UNKNOWN_KEY
    if message.startswith("Missing mandatory value"):
        return "a value is required"
    return message


def _suggestion(full_key: str) -> str:
    """`` (did you mean sft.epochs?)`` when a known key is close to an unknown one, or where a key of an
    earlier release went (:data:`MOVED_KEYS`)."""
    for old_key, change in MOVED_KEYS.items():
        if full_key == old_key or full_key.startswith(f"{old_key}."):
            return f" ({change})"
    parent, _, leaf = full_key.rpartition(".")
    section: Any = RunConfig
    for part in filter(None, parent.split(".")):
        fields = {f.name: f for f in dataclasses.fields(section)} if dataclasses.is_dataclass(section) else {}
        if part not in fields:
            return ""
        section = _field_type(section, part)
    if not dataclasses.is_dataclass(section):
        return ""
    known = [f.name for f in dataclasses.fields(section)]
    close = difflib.get_close_matches(leaf, known, n=1)
    if not close:
        return f" (known keys here: {', '.join(known)})"
    return f" (did you mean {'.'.join(filter(None, [parent, close[0]]))}?)"


def _field_type(section: Any, name: str) -> Any:
    default_instance = section()
    return type(getattr(default_instance, name))


def _validate_tree(node: Any, prefix: str, source: str) -> None:
    if not dataclasses.is_dataclass(node):
        return
    validate = getattr(node, "validate", None)
    if validate is not None:
        try:
            validate()
        except ConfigValueError as error:
            raise ConfigError(f"{source}: {prefix}{error.field}: {error.message}") from None
    for item in dataclasses.fields(node):
        _validate_tree(getattr(node, item.name), f"{prefix}{item.name}.", source)
