"""Generator on HF transformers + peft: padded batches through ``model.generate``.

Prompts are left-padded into batches of ``hf_batch_size``. Adapter versions
are loaded into one :class:`peft.PeftModel` under the names ``v<version>``;
the previous version is deleted once the new one is active. Each batch samples
on a private torch random stream seeded from the generator's stream (see
:meth:`~prism_agents.policies.generators.base.Generator.reseed`), leaving torch's
global one alone. ``score`` is one forward pass per prompt.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import peft
import torch
from transformers import AutoModelForCausalLM, GenerationConfig

from prism_agents.config.generation import GeneratorConfig, SamplingConfig
from prism_agents.policies.generators.base import Completion, Generator, PromptScores
from prism_agents.policies.generators.check import next_token_logprobs
from prism_agents.policies.lora import resolve_device
from prism_agents.registry import GENERATORS


@GENERATORS.register("hf")
class HFGenerator(Generator):
    """Batched generation with transformers; the adapter is a peft adapter on the base model."""

    def __init__(self, config: GeneratorConfig, base_model_path: str | Path) -> None:
        super().__init__(config, base_model_path)
        self.device = resolve_device(config.hf_device)
        base = AutoModelForCausalLM.from_pretrained(self.base_model_path, dtype=getattr(torch, config.dtype))
        self.model: torch.nn.Module = base.to(self.device).eval()
        self._adapter_name: str | None = None
        pad_id = self.tokenizer.pad_token_id
        self.pad_id = pad_id if pad_id is not None else self.tokenizer.eos_token_id
        self.stop_ids = _stop_token_ids(base.generation_config.eos_token_id, self.tokenizer.eos_token_id)

    def _serve_adapter(self, path: Path, version: int) -> None:
        name = f"v{version}"
        previous = self._adapter_name
        if isinstance(self.model, peft.PeftModel):
            if name in self.model.peft_config:
                self.model.delete_adapter(name)  # the same version saved again: reload its weights
                previous = None if previous == name else previous
            self.model.load_adapter(str(path), adapter_name=name)
            self.model.set_adapter(name)
        else:
            self.model = peft.PeftModel.from_pretrained(self.model, str(path), adapter_name=name).eval()
        if previous is not None:
            self.model.delete_adapter(previous)
        self._adapter_name = name

    def _serve_base(self) -> None:
        self._adapter_name = None

    def generate(self, prompts: Sequence[Sequence[int]], sampling: SamplingConfig | None = None) -> list[Completion]:
        sampling = self._sampling(sampling)
        size = self.config.hf_batch_size
        completions: list[Completion] = []
        for start in range(0, len(prompts), size):
            completions.extend(self._generate_batch([list(p) for p in prompts[start : start + size]], sampling))
        return completions

    def _generate_batch(self, prompts: list[list[int]], sampling: SamplingConfig) -> list[Completion]:
        width = max(len(p) for p in prompts)
        input_ids = torch.tensor([[self.pad_id] * (width - len(p)) + p for p in prompts], device=self.device)
        attention_mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=self.device)
        # The options that matter are set explicitly: generate() fills unset (None) ones from the model's generation
        # config (top_k=50, its eos ids), which would make HF sample or stop differently from vLLM.
        randomness = (
            {} if sampling.greedy else {"temperature": sampling.temperature, "top_p": sampling.top_p, "top_k": 0}
        )
        options = GenerationConfig(
            max_new_tokens=sampling.max_new_tokens,
            do_sample=not sampling.greedy,
            eos_token_id=[] if sampling.ignore_eos else self.stop_ids,
            pad_token_id=self.pad_id,
            output_logits=True,
            return_dict_in_generate=True,
            **randomness,
        )
        seed = self._call_seed()
        with torch.no_grad(), self._served(), torch.random.fork_rng(devices=_cuda_devices(self.device)):
            torch.manual_seed(seed)
            output = self.model.generate(input_ids=input_ids, attention_mask=attention_mask, generation_config=options)
        new_tokens = output.sequences[:, width:].tolist()
        logprobs = torch.log_softmax(torch.stack(output.logits, dim=1).float(), dim=-1)
        chosen = logprobs.gather(-1, output.sequences[:, width:, None]).squeeze(-1).tolist()
        completions = []
        for prompt, tokens, token_logprobs in zip(prompts, new_tokens, chosen):
            end = _first_stop(tokens, () if sampling.ignore_eos else self.stop_ids)
            stopped = end < len(tokens)
            keep = end + 1 if stopped else len(tokens)
            completions.append(self._completion(len(prompt), tokens[:keep], token_logprobs[:keep], stopped))
        return completions

    def score(self, prompts: Sequence[Sequence[int]]) -> list[PromptScores]:
        with self._served():
            return [_prompt_scores(list(prompt), next_token_logprobs(self.model, list(prompt))) for prompt in prompts]

    def _served(self) -> AbstractContextManager:
        """Context in which ``self.model`` is what is served: the peft adapters disabled while the base model is."""
        base_served = self._adapter_name is None and isinstance(self.model, peft.PeftModel)
        return self.model.disable_adapter() if base_served else nullcontext()

    def close(self) -> None:
        del self.model
        if self.device.type == "cuda":
            torch.cuda.empty_cache()


def _stop_token_ids(*candidates: int | list[int] | None) -> list[int]:
    ids: list[int] = []
    for candidate in candidates:
        for token in [candidate] if isinstance(candidate, int) else candidate or []:
            if token not in ids:
                ids.append(token)
    return ids


def _prompt_scores(prompt: list[int], logprobs: torch.Tensor) -> PromptScores:
    """:class:`PromptScores` of ``prompt`` from its log-softmax rows (one after each prefix)."""
    greedy_logprobs, greedy_ids = logprobs.max(dim=-1)
    actual = logprobs[:-1].gather(1, torch.tensor(prompt[1:])[:, None]).squeeze(1)
    return PromptScores(actual.tolist(), greedy_ids.tolist(), greedy_logprobs.tolist())


def _first_stop(tokens: list[int], stop_ids: Sequence[int]) -> int:
    """Index of the first stop token in ``tokens``, or ``len(tokens)`` when there is none."""
    return next((i for i, token in enumerate(tokens) if token in stop_ids), len(tokens))


def _cuda_devices(device: torch.device) -> list[int]:
    return [device.index or 0] if device.type == "cuda" else []
