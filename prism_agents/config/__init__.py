"""Typed run configuration: schema dataclasses and the YAML + overrides loader."""

from prism_agents.config.base import ConfigError
from prism_agents.config.loader import flat_config, load_config, to_yaml
from prism_agents.config.schema import RunConfig

__all__ = ["ConfigError", "RunConfig", "flat_config", "load_config", "to_yaml"]
