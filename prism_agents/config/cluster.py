"""Config section ``cluster``: where a run's parts execute, from one process to a Ray cluster."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Optional

from prism_agents.config.base import require, require_one_of

BACKENDS = ("local", "ray")
ADDRESS = re.compile(r"(ray://)?[A-Za-z0-9_.\-]+:[0-9]{1,5}")
"""A Ray address: the head's ``host:port`` (GCS) or a Ray Client ``ray://host:port``."""


@dataclass
class ClusterConfig:
    """How the environments, the generator and the learner are spread over processes and machines.

    ``backend: local`` (the default) runs as one process with ``environment.num_workers`` worker processes and
    never imports Ray. ``backend: ray`` places environment workers, vLLM engine replicas and torch.distributed
    learner workers as Ray actors, on a Ray it starts on this machine or on a running cluster (docs/scaling.md).
    """

    backend: str = "local"
    """``local`` (one machine, no Ray) or ``ray`` (Ray actors; the fields below apply)."""
    address: Optional[str] = None
    """Ray to join: None starts a private Ray on this machine with ``local_cpus`` CPUs and ``object_store_mib``
    of object store (no dashboard, localhost only) and stops it at the end; ``auto`` joins the Ray running on
    this machine (``ray start --head`` or a worker node of a cluster); ``host:6379`` joins the cluster whose head
    is there; ``ray://host:10001`` joins through Ray Client."""
    local_cpus: int = 2
    """CPUs the private Ray started when ``address`` is None may schedule (fractional actors share them)."""
    local_gpus: int = 0
    """GPUs the private Ray started when ``address`` is None may schedule."""
    object_store_mib: int = 256
    """Object store memory of the private Ray started when ``address`` is None, in MiB."""
    env_workers: int = 2
    """Environment actors (each steps its share of the batch's environments); replaces ``environment.num_workers``."""
    env_worker_cpus: float = 0.5
    """CPUs each environment actor reserves in Ray's scheduler (fractional allowed, e.g. 0.25 packs four per core)."""
    generator_replicas: int = 1
    """vLLM engine replicas (data parallel: a batch of prompts is spread over them); each serves every adapter
    version, checked before use."""
    generator_gpus: float = 0.0
    """GPUs each engine replica reserves (0 on CPU machines; a fraction when colocated with the learner)."""
    generator_cpus: float = 0.5
    """CPUs each engine replica reserves in Ray's scheduler."""
    tensor_parallel_size: int = 1
    """GPUs one engine replica spreads its model over (vLLM tensor parallelism; needs that many GPUs per
    replica)."""
    learner_workers: int = 1
    """torch.distributed learner workers (data parallel over the LoRA parameters): each computes the gradient of
    its share of every global batch; the adapter does not depend on the count beyond float rounding."""
    learner_gpus: float = 0.0
    """GPUs each learner worker reserves (0: CPU workers, gloo; otherwise NCCL)."""
    learner_cpus: float = 0.5
    """CPUs each learner worker reserves in Ray's scheduler."""
    colocate: bool = False
    """One engine replica and one learner worker share one GPU (each with its fraction ``generator_gpus`` /
    ``learner_gpus``); false gives each its own GPUs. Ray packs fractional GPU requests onto the same GPU, so
    colocation is refused for more than one replica or worker (NCCL needs each learner worker on its own GPU)."""
    actor_threads: int = 0
    """Threads torch (and through OpenMP vLLM's CPU kernels) uses in each engine replica and each learner worker.
    Ray caps an actor's threads at its CPU reservation (1 for a fractional one); rollouts and updates take turns,
    so 0 (default) gives each the node's CPUs divided by the count of its kind (``generator_replicas`` or
    ``learner_workers``). ``generator.num_threads``, when set, wins for the engines."""
    max_actor_restarts: int = 3
    """Times Ray restarts a crashed actor. An environment actor that dies costs its episodes (counted as failed),
    never the run: past this count the pool starts a fresh actor. An engine replica is restarted and synced to the
    current adapter version up to this count; past it the stage fails and ``--resume`` continues."""

    @property
    def uses_ray(self) -> bool:
        """True when the run places its parts as Ray actors."""
        return self.backend == "ray"

    def validate(self) -> None:
        require_one_of(self.backend, BACKENDS, "backend")
        require(
            self.address is None or self.address == "auto" or ADDRESS.fullmatch(self.address) is not None,
            "address",
            f"must be unset (a private Ray on this machine), 'auto', 'host:port' or 'ray://host:port' (got {self.address!r})",
        )
        require(self.local_cpus >= 1, "local_cpus", f"must be at least 1 (got {self.local_cpus})")
        require(self.local_gpus >= 0, "local_gpus", f"must be 0 or more (got {self.local_gpus})")
        require(self.object_store_mib >= 64, "object_store_mib", f"must be at least 64 (got {self.object_store_mib})")
        require(self.env_workers >= 1, "env_workers", f"must be at least 1 (got {self.env_workers})")
        require(self.generator_replicas >= 1, "generator_replicas", f"must be at least 1 (got {self.generator_replicas})")
        require(self.learner_workers >= 1, "learner_workers", f"must be at least 1 (got {self.learner_workers})")
        require(self.tensor_parallel_size >= 1, "tensor_parallel_size", f"must be at least 1 (got {self.tensor_parallel_size})")
        for name in ("env_worker_cpus", "generator_cpus", "learner_cpus"):
            value = getattr(self, name)
            require(value > 0, name, f"must be positive (got {value})")
        for name in ("generator_gpus", "learner_gpus"):
            value = getattr(self, name)
            require(value >= 0, name, f"must be 0 (CPU) or more (got {value})")
        require(
            self.tensor_parallel_size == 1 or self.generator_gpus >= self.tensor_parallel_size,
            "tensor_parallel_size",
            f"needs generator_gpus >= tensor_parallel_size (got {self.tensor_parallel_size} with "
            f"generator_gpus={self.generator_gpus})",
        )
        require(
            not self.colocate or (self.generator_gpus > 0 and self.learner_gpus > 0),
            "colocate",
            "needs generator_gpus and learner_gpus above 0 (colocation shares GPUs)",
        )
        if self.colocate:
            require(
                self.generator_replicas == 1 and self.learner_workers == 1,
                "colocate",
                f"shares one GPU between one engine and one learner worker (got generator_replicas="
                f"{self.generator_replicas}, learner_workers={self.learner_workers}); on several GPUs set colocate: false",
            )
            require(
                self.generator_gpus + self.learner_gpus <= 1.0,
                "colocate",
                f"needs generator_gpus + learner_gpus <= 1 to share a GPU (got {self.generator_gpus} + {self.learner_gpus})",
            )
        if self.uses_ray and self.address is None:
            self._require_fits_private_ray()
        require(self.actor_threads >= 0, "actor_threads", f"must be 0 (share the node's CPUs) or more (got {self.actor_threads})")
        require(self.max_actor_restarts >= 0, "max_actor_restarts", f"must be 0 or more (got {self.max_actor_restarts})")

    def _require_fits_private_ray(self) -> None:
        """Refuse actors that the private Ray (``local_cpus`` / ``local_gpus``) could never place all at once."""
        cpus = (
            self.env_workers * self.env_worker_cpus
            + self.generator_replicas * self.generator_cpus
            + self.learner_workers * self.learner_cpus
        )
        require(
            cpus <= self.local_cpus + 1e-9,
            "local_cpus",
            f"is {self.local_cpus}, fewer than the actors reserve together ({self.env_workers} x env_worker_cpus "
            f"{self.env_worker_cpus} + {self.generator_replicas} x generator_cpus {self.generator_cpus} + "
            f"{self.learner_workers} x learner_cpus {self.learner_cpus} = {cpus:g}); raise it or lower those",
        )
        gpus = self.generator_replicas * self.generator_gpus + self.learner_workers * self.learner_gpus
        require(
            gpus <= self.local_gpus + 1e-9,
            "local_gpus",
            f"is {self.local_gpus}, fewer than the actors reserve together (generator_replicas x generator_gpus + "
            f"learner_workers x learner_gpus = {gpus:g}); raise it or lower those",
        )


def actor_threads(setting: int, actors: int) -> int:
    """Threads for one of ``actors`` actors of a kind: ``setting``, or for 0 this node's CPUs shared among them."""
    return setting or max(1, (os.cpu_count() or 1) // actors)
