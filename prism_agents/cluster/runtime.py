"""Connecting to Ray: a private, bounded Ray on this machine or a running cluster."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from prism_agents.config.cluster import ClusterConfig

log = logging.getLogger(__name__)


@contextmanager
def ray_runtime(config: ClusterConfig) -> Iterator[None]:
    """Ray connected for the duration of the block, as ``config`` says.

    A Ray already initialised in this process (a test's, a user's) is used as it is and left running. Otherwise
    ``address`` None starts a private Ray (``local_cpus`` CPUs, ``local_gpus`` GPUs, ``object_store_mib`` of
    object store, no dashboard, localhost only) and ``auto`` / ``ray://`` join a running one; either is
    disconnected at the end, which also stops a private Ray and its worker processes.
    """
    import ray

    if ray.is_initialized():
        yield
        return
    if config.address is None:
        log.info("starting a private Ray: %d CPUs, %d GPUs, %d MiB object store", config.local_cpus, config.local_gpus, config.object_store_mib)
        with _loopback_only():
            ray.init(
                num_cpus=config.local_cpus,
                num_gpus=config.local_gpus,
                object_store_memory=config.object_store_mib * 1024 * 1024,
                include_dashboard=False,
                _node_ip_address="127.0.0.1",
                log_to_driver=False,
                configure_logging=False,
            )
    else:
        log.info("joining Ray at %s", config.address)
        ray.init(address=config.address, log_to_driver=False, configure_logging=False)
    try:
        yield
    finally:
        ray.shutdown()


@contextmanager
def _loopback_only() -> Iterator[None]:
    """Keep the node address 127.0.0.1 while a private Ray starts, so that it listens on the loopback interface only.

    Ray 2.60 replaces a loopback ``_node_ip_address`` by the machine's address (and its servers then listen on every
    interface) unless its ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER`` switch is off; ``ray_constants`` reads that variable
    when Ray is imported, so the switch is turned off there for the start and restored after it.
    """
    from ray._private import ray_constants

    saved = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved
