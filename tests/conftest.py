"""Fixtures shared by the test modules (defined beside the helpers they use)."""

from alfworld_data import alfworld_fixture_root, alfworld_real_root  # noqa: F401
from tiny_model import model_config, tiny_model_threads  # noqa: F401
