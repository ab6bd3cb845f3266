"""Fixtures shared by the test modules (defined beside the helpers they use)."""

import os

# As the CLI does (prism_agents.logs): vLLM leaves Python's logging alone, so an engine started by one test module
# does not install its own handlers for the modules that run after it.
os.environ.setdefault("VLLM_CONFIGURE_LOGGING", "0")

from alfworld_data import alfworld_fixture_root, alfworld_real_root  # noqa: E402, F401
from tiny_model import model_config, tiny_model_threads  # noqa: E402, F401
from run_arguments import run_args, tiny_model  # noqa: E402, F401
