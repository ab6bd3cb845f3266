"""Data parallelism inside the learners: one rule for SFT, the RL loop and the probe, the identity for one process.

Every worker computes the same global batch layout (it is deterministic) and :meth:`DataParallel.share` gives it
its rows of each batch: a contiguous slice, the slices of all workers covering the batch in order. A loss is a
sum over the worker's terms divided by the *global* denominator (a token or decision count of the whole batch,
known locally from the batch) and multiplied by :attr:`BatchShare.weight`, the number of workers; DDP averages
the gradients over the workers, so the average is the gradient the whole batch gives in one process. A worker
without rows (a batch smaller than the group) runs the batch's first row with weight 0, so it still joins DDP's
all-reduce. :meth:`DataParallel.combine` turns each worker's step metrics into the batch's. With one worker
(:data:`LOCAL`) every method is the identity and nothing touches ``torch.distributed``.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import torch
import torch.distributed as dist

Row = TypeVar("Row")


@dataclass(frozen=True)
class BatchShare(Generic[Row]):
    """One worker's part of one global batch."""

    rows: list[Row]
    """The rows this worker runs: its slice of the batch, or the batch's first row when the slice is empty."""
    weight: float
    """Factor of this worker's loss: the number of workers (DDP's average then gives the batch's gradient), 0 for
    the stand-in row of an empty slice."""

    @property
    def present(self) -> bool:
        """Whether this worker's rows are its own (False: the zero-weighted stand-in row)."""
        return self.weight != 0.0


@dataclass(frozen=True)
class DataParallel:
    """This process's rank among ``world`` torch.distributed learner workers (``LOCAL``: one process, no group)."""

    rank: int = 0
    """This worker's rank, 0 to ``world - 1``."""
    world: int = 1
    """Number of workers; 1 is a plain single-process run."""
    device: str = "cpu"
    """Device of the tensors the collectives exchange (``cuda`` under NCCL)."""

    def share(self, batch: Sequence[Row]) -> BatchShare[Row]:
        """This worker's rows of ``batch`` (see the module docstring)."""
        if self.world == 1:
            return BatchShare(list(batch), 1.0)
        size, extra = divmod(len(batch), self.world)
        first = self.rank * size + min(self.rank, extra)
        rows = list(batch[first : first + size + (self.rank < extra)])
        return BatchShare(rows, float(self.world)) if rows else BatchShare([batch[0]], 0.0)

    def batches(self, layout: Sequence[Row]) -> list[Row]:
        """Whole batches of ``layout`` dealt round-robin (for work without a gradient, such as the probe)."""
        return list(layout[self.rank :: self.world])

    def wrap(self, model: torch.nn.Module, *extras: torch.nn.Module) -> torch.nn.Module:
        """``model`` (called as before) whose trainable parameters, and ``extras``' (modules used outside its forward,
        such as a value head), have their gradients averaged over the workers by DDP; ``model`` itself with one."""
        if self.world == 1:
            return model
        from torch.nn.parallel import DistributedDataParallel

        # every worker loaded the same weights: no broadcast of the (frozen) base model at construction
        return DistributedDataParallel(_Trained(model, extras), init_sync=False)

    def combine(
        self,
        values: dict[str, float],
        present: bool,
        means: Collection[str] = (),
        maxima: Collection[str] = (),
        weight: str = "action_tokens",
    ) -> dict[str, float]:
        """The batch's metrics from every worker's ``values``: keys in ``means`` are means over the worker's
        ``values[weight]`` tokens (weighted by them), keys in ``maxima`` maxima, all others sums (losses already
        divided by the global count, counts); a worker that is not ``present`` contributes nothing."""
        if self.world == 1:
            return values
        summed = [key for key in values if key not in maxima]
        peaks = [key for key in values if key in maxima]
        totals = [values[key] * (values[weight] if key in means else 1.0) if present else 0.0 for key in summed]
        sums = self.all_reduce(totals, dist.ReduceOp.SUM)
        tops = self.all_reduce([values[key] if present else -torch.inf for key in peaks], dist.ReduceOp.MAX)
        result = dict(zip(summed, sums)) | dict(zip(peaks, tops))
        for key in means:
            if key in result:
                result[key] = result[key] / result[weight] if result[weight] else 0.0
        return result

    def all_reduce(self, values: Sequence[float], op: dist.ReduceOp.RedOpType = dist.ReduceOp.SUM) -> list[float]:
        """``values`` reduced elementwise over the workers with ``op`` (float64); unchanged with one worker."""
        if self.world == 1 or not values:
            return list(values)
        tensor = torch.tensor(list(values), dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor, op=op)
        return tensor.tolist()


LOCAL = DataParallel()
"""One process: no sharding, no collectives."""


class _Trained(torch.nn.Module):
    """The module DDP wraps: the model, whose forward it runs, and extra modules trained beside it."""

    def __init__(self, model: torch.nn.Module, extras: Sequence[torch.nn.Module]) -> None:
        super().__init__()
        self.model = model
        self.extras = torch.nn.ModuleList(extras)

    def forward(self, *args, **kwargs):
        return self.model(*args, **kwargs)
