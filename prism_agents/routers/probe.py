"""PRISM's gradient probe: per expert trajectory, the norm of the loss gradient at every projection matrix.

Read top to bottom, one call of :meth:`GradientProbe.probe` is:

1. cut every trajectory into examples with the run's :class:`PromptBuilder`
   (one per trajectory with ``history: full``, one per step with ``window``),
   fit examples longer than ``max_tokens`` with the token kernel's rule (cut from
   the front, system prompt and last action kept:
   :func:`~prism_agents.learners.tokens.fit_example`), drop examples left
   without an action token;
2. group whole trajectories into right-padded batches of similar length whose
   padded size (rows x longest) stays within ``batch_tokens`` (0: one
   trajectory per batch) and whose padding stays within the kernel's 10 %
   (:func:`~prism_agents.learners.tokens.length_batches`); no padding mask is
   needed (see :func:`trajectory_losses`);
3. per batch, on the frozen base model (or the policy with its adapter: on
   request, and always for ``target="lora"``), each trajectory's loss: the
   mean next-token cross-entropy over its action tokens; then one backward
   pass of the sum of these losses, with no optimizer step and no parameter
   requiring grad (the gradient enters at the input embeddings' output).

The norms are taken on the fly. A forward hook on each probed ``nn.Linear``
keeps its input X; a hook on its output's gradient G adds, per trajectory t,
``||G_t^T X_t||_F^2`` (G_t, X_t: the rows of t's examples) and lets X and G go,
so no weight gradient is ever kept. Rows never interact in a decoder, so G_t is
exactly the gradient of t's own loss. With ``target="lora"`` the probed linears
are each projection's ``lora_A`` and ``lora_B``, whose squared norms add up.

On several learner workers (:meth:`GradientProbe.probe_shard`) every worker computes the same batches and probes
whole batches of its own, dealt round-robin (:meth:`~prism_agents.learners.parallel.DataParallel.batches`); the
driver puts the results back in input order (:func:`in_input_order`). A batch is computed the same way whichever
worker runs it, so the scores do not depend on the number of workers.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from itertools import accumulate

import torch
from tqdm.auto import tqdm

from prism_agents.faults import fault_point
from prism_agents.learners.parallel import LOCAL, DataParallel
from prism_agents.learners.tokens import action_token_losses, collate, fit_example, length_batches
from prism_agents.policies.lora import Policy
from prism_agents.policies.prompts import PromptBuilder, TrainingExample
from prism_agents.types import Trajectory

PROJECTIONS: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
"""The projection matrices of a decoder layer the probe measures, in the order of its output."""
TARGETS = ("base", "lora")


@dataclass
class ProbeResult:
    """What the probe measured on one trajectory."""

    trajectory_id: str
    """The trajectory probed."""
    loss: float
    """Mean next-token cross-entropy over the trajectory's action tokens."""
    action_tokens: int
    """Action tokens the loss averages over."""
    tokens: int
    """Non-padding tokens read (after cutting to ``max_tokens``)."""
    gradient_norms: list[float]
    """Frobenius norm of the loss gradient per matrix, in :attr:`GradientProbe.matrix_names` order;
    empty when probed without gradients."""


@dataclass
class _Prepared:
    """A trajectory's examples, ready to batch."""

    trajectory_id: str
    examples: list[TrainingExample]

    @property
    def width(self) -> int:
        return max(len(example.input_ids) for example in self.examples)

    @property
    def used_positions(self) -> int:
        """Positions whose outputs reach the loss: those before the last action token."""
        return max(len(ex.loss_mask) - 1 - ex.loss_mask[::-1].index(1) for ex in self.examples)


def find_projections(model: torch.nn.Module) -> list[list[torch.nn.Module]]:
    """Per decoder layer, its :data:`PROJECTIONS` modules in order; a clear error when a model lacks them.

    A projection is a module whose name ends with one of :data:`PROJECTIONS`; its layer is the
    last number in its name (``model.layers.3.self_attn.q_proj`` is layer 3's q_proj).
    """
    layers: dict[int, dict[str, torch.nn.Module]] = {}
    for name, module in model.named_modules():
        parts = name.split(".")
        numbers = [int(part) for part in parts[:-1] if part.isdigit()]
        if parts[-1] in PROJECTIONS and numbers:
            layers.setdefault(numbers[-1], {})[parts[-1]] = module
    if not layers:
        linears = sorted({name.split(".")[-1] for name, module in model.named_modules() if isinstance(module, torch.nn.Linear)})
        raise ValueError(
            f"the gradient probe needs the projections {', '.join(PROJECTIONS)} in every decoder layer; "
            f"{type(model).__name__} has none (its linear layers are named: {', '.join(linears) or 'none'})"
        )
    problems = [
        f"layer {layer}: {', '.join(sorted(layers.get(layer, {}))) or 'nothing'}"
        for layer in range(max(layers) + 1)
        if set(layers.get(layer, {})) != set(PROJECTIONS)
    ]
    if problems:
        raise ValueError(
            f"the gradient probe needs the projections {', '.join(PROJECTIONS)} in every decoder layer "
            f"of {type(model).__name__}; found only: {'; '.join(problems)}"
        )
    return [[layers[layer][projection] for projection in PROJECTIONS] for layer in range(len(layers))]


class _SquaredNormHooks:
    """Hooks adding, per trajectory of the current batch, ``||dLoss_t/dW||_F^2`` of watched linears to a table.

    ``matrices[m]`` lists the linears whose weight gradients make up matrix m (their squares add).
    Call :meth:`start` before each batch's forward pass with each trajectory's rows and used positions.
    """

    def __init__(self, matrices: Sequence[Sequence[torch.nn.Module]]) -> None:
        self.matrices = matrices
        self.spans: list[tuple[int, int, int]] = []
        self.squares = torch.zeros(0, len(matrices))

    @contextmanager
    def attached(self) -> Iterator[None]:
        handles = [
            linear.register_forward_hook(self._keep_input(matrix))
            for matrix, linears in enumerate(self.matrices)
            for linear in linears
        ]
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()

    def start(self, spans: list[tuple[int, int, int]], device: torch.device) -> None:
        """``spans``: per trajectory (first row, end row, positions used)."""
        self.spans = spans
        self.squares = torch.zeros(len(spans), len(self.matrices), dtype=torch.float32, device=device)

    def _keep_input(self, matrix: int):
        def hook(module: torch.nn.Module, args: tuple, output: torch.Tensor) -> None:
            if not output.requires_grad:
                return
            kept = [args[0]]
            output.register_hook(lambda grad: self._add(matrix, kept.pop(), grad))

        return hook

    def _add(self, matrix: int, inputs: torch.Tensor, grad: torch.Tensor) -> None:
        for row, (first, end, used) in enumerate(self.spans):
            g = grad[first:end, :used].flatten(0, 1).float()
            x = inputs[first:end, :used].flatten(0, 1).float()
            self.squares[row, matrix] += torch.linalg.matrix_norm(g.T @ x).square()


class GradientProbe:
    """Per-trajectory action-token loss and gradient norms at every projection matrix (see the module docstring)."""

    def __init__(
        self,
        policy: Policy,
        prompts: PromptBuilder,
        *,
        target: str = "base",
        use_adapter: bool = False,
        batch_tokens: int = 0,
        max_tokens: int | None = None,
        progress: bool = False,
    ) -> None:
        """``target``: ``base`` (the projection weights) or ``lora`` (the adapter's A and B of each projection);
        ``use_adapter``: with target ``base``, probe the current policy instead of the frozen base model
        (target ``lora`` always runs the adapter: its weights have a gradient only there; a fresh adapter,
        B = 0, computes the base model's function); ``batch_tokens``: padded-token budget of a batch
        (0: one trajectory at a time); ``max_tokens``: examples are cut to this length (None: ``policy.max_seq_len``)."""
        if target not in TARGETS:
            raise ValueError(f"GradientProbe target must be one of {', '.join(TARGETS)} (got {target!r})")
        if batch_tokens < 0:
            raise ValueError(f"GradientProbe batch_tokens must be 0 (one trajectory per batch) or positive (got {batch_tokens})")
        self.policy = policy
        self.prompts = prompts
        self.target = target
        self.use_adapter = use_adapter or target == "lora"
        self.batch_tokens = batch_tokens
        self.max_tokens = policy.max_seq_len if max_tokens is None else max_tokens
        if self.max_tokens < 2:
            raise ValueError(f"GradientProbe max_tokens must be at least 2 (got {self.max_tokens})")
        self.progress = progress
        layers = find_projections(policy.model.get_base_model())
        self.matrix_names: list[str] = [f"layer.{layer}.{name}" for layer in range(len(layers)) for name in PROJECTIONS]
        """One name per probed matrix, ``layer.<i>.<projection>``, in the order of the gradient norms."""
        modules = [module for layer in layers for module in layer]
        self._hooks = _SquaredNormHooks([self._linears(module, name) for module, name in zip(modules, self.matrix_names)])

    def _linears(self, module: torch.nn.Module, name: str) -> list[torch.nn.Module]:
        """The linears whose weight gradients make up matrix ``name`` for this probe's target."""
        if self.target == "base":
            return [getattr(module, "base_layer", module)]
        adapter = self.policy.model.active_adapter
        if adapter not in getattr(module, "lora_A", {}):
            raise ValueError(f"GradientProbe target='lora': {name} has no LoRA adapter {adapter!r} (see lora.target_modules)")
        return [module.lora_A[adapter], module.lora_B[adapter]]

    def probe(self, trajectories: Sequence[Trajectory], gradients: bool = True) -> list[ProbeResult]:
        """One result per trajectory, in input order; ``gradients=False``: losses only, without a backward pass."""
        return in_input_order([self.probe_shard(trajectories, gradients)], len(trajectories))

    def probe_shard(
        self, trajectories: Sequence[Trajectory], gradients: bool = True, parallel: DataParallel = LOCAL
    ) -> list[tuple[int, ProbeResult]]:
        """(input index, result) of the trajectories in ``parallel``'s share of the batches (all of them with one
        worker); :func:`in_input_order` merges the shares of every worker."""
        prepared = [_Prepared(trajectory.trajectory_id, self.examples(trajectory)) for trajectory in trajectories]
        batches = parallel.batches(self.batches([item.examples for item in prepared]))
        results: list[tuple[int, ProbeResult]] = []
        with self._probing(gradients):
            for batch in tqdm(batches, desc="probe", unit="batch", disable=not self.progress):
                results += zip(batch, self._probe_batch([prepared[index] for index in batch], gradients))
                fault_point("probe.batch")
        return results

    def batches(self, examples: Sequence[Sequence[TrainingExample]]) -> list[list[int]]:
        """Trajectory indices grouped into batches (see the module docstring); ``examples[t]``: trajectory t's."""
        return length_batches(
            [max(len(example.input_ids) for example in item) for item in examples],
            self.batch_tokens,
            rows=[len(item) for item in examples],
            tokens=[sum(len(example.input_ids) for example in item) for item in examples],
        )

    def examples(self, trajectory: Trajectory) -> list[TrainingExample]:
        """The examples probed for ``trajectory``: fitted to ``max_tokens``, those left without an action token dropped."""
        head = self.prompts.system_ids()
        fitted = [fit_example(example, self.max_tokens, head)[0] for example in self.prompts.examples(trajectory)]
        examples = [example for example in fitted if example is not None and sum(example.loss_mask[1:])]
        if not examples:
            raise ValueError(
                f"trajectory {trajectory.trajectory_id!r} has no action token to probe "
                f"({len(trajectory.steps)} steps, examples fitted to {self.max_tokens} tokens)"
            )
        return examples

    @contextmanager
    def _probing(self, gradients: bool) -> Iterator[None]:
        """No parameter requires grad, eval mode, adapter off unless asked, hooks on; all restored on exit."""
        model = self.policy.model
        flags = [(parameter, parameter.requires_grad) for parameter in model.parameters()]
        training = model.training

        def restore() -> None:
            for parameter, flag in flags:
                parameter.requires_grad_(flag)
            model.train(training)

        with ExitStack() as stack:
            stack.callback(restore)  # runs last: leaving peft's disable_adapter sets adapter flags itself
            if not self.use_adapter:
                stack.enter_context(self.policy.adapter_disabled())
            for parameter, _ in flags:
                parameter.requires_grad_(False)
            model.eval()
            stack.enter_context(torch.enable_grad() if gradients else torch.no_grad())
            if gradients:
                stack.enter_context(self._hooks.attached())
            yield

    def _probe_batch(self, items: Sequence[_Prepared], gradients: bool) -> list[ProbeResult]:
        device = self.policy.device
        examples = [example for item in items for example in item.examples]
        ids, _, mask = collate(examples, self.policy.tokenizer.pad_token_id, device)
        owners = torch.tensor([position for position, item in enumerate(items) for _ in item.examples], device=device)
        norms: list[list[float]] = [[] for _ in items]
        if gradients:
            ends = accumulate(len(item.examples) for item in items)
            spans = [(end - len(item.examples), end, item.used_positions) for item, end in zip(items, ends)]
            self._hooks.start(spans, device)
        losses, counts, embeds = trajectory_losses(self.policy.model, ids, mask, owners, len(items))
        if gradients:
            torch.autograd.grad(losses.sum(), embeds)  # the hooks collect the norms on the way
            norms = self._hooks.squares.sqrt().tolist()
        return [
            ProbeResult(
                trajectory_id=item.trajectory_id,
                loss=float(losses[position].detach()),
                action_tokens=int(counts[position]),
                tokens=sum(len(example.input_ids) for example in item.examples),
                gradient_norms=norms[position],
            )
            for position, item in enumerate(items)
        ]


def in_input_order(shares: Sequence[Sequence[tuple[int, ProbeResult]]], count: int) -> list[ProbeResult]:
    """The results of :meth:`GradientProbe.probe_shard`'s ``shares`` (one per worker) for ``count`` trajectories,
    in input order; an error names the trajectories no share covered or covered twice."""
    results: list[ProbeResult | None] = [None] * count
    twice = []
    for index, result in (pair for share in shares for pair in share):
        if results[index] is not None:
            twice.append(index)
        results[index] = result
    missing = [index for index, result in enumerate(results) if result is None]
    if missing or twice:
        raise RuntimeError(f"probe shares do not cover the trajectories once: missing {missing}, repeated {twice}")
    return [result for result in results if result is not None]


def trajectory_losses(
    model: torch.nn.Module, input_ids: torch.Tensor, loss_mask: torch.Tensor, owners: torch.Tensor, count: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per owner (rows with equal ``owners[row]``), the mean next-token cross-entropy over its action tokens.

    ``input_ids`` must be right-padded: under the causal mask no real token sees the padding after it,
    so no padding mask is passed, which lets attention use its causal kernel instead of materializing
    (rows x heads x length^2) scores; the padding's own outputs are never read.
    Returns the losses, the action-token counts and the input embeddings; in grad mode the embeddings
    require grad, so a backward pass reaches every layer without any parameter requiring grad.
    """
    embeds = model.get_input_embeddings()(input_ids)
    if torch.is_grad_enabled():
        embeds.requires_grad_()
    token_losses, targets = action_token_losses(model, input_ids, loss_mask, inputs_embeds=embeds)
    token_owners = owners[:, None].expand_as(targets)[targets]
    counts = torch.bincount(token_owners, minlength=count)
    sums = torch.zeros(count, dtype=token_losses.dtype, device=token_losses.device).index_add(0, token_owners, token_losses)
    return sums / counts, counts, embeds
