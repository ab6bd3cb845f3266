"""Config sections for the generator that serves the LoRA policy (vLLM or HF transformers)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prism_agents.config.base import require, require_device, require_one_of
from prism_agents.config.model import DTYPES

DEFAULT_CHECK_PROMPT = "You arrive at fridge 1. The fridge 1 is closed."


@dataclass
class SamplingConfig:
    """How tokens are chosen for one ``generate`` call."""

    max_new_tokens: int = 64
    """Most tokens generated per prompt (generation also stops at the end-of-turn token)."""
    temperature: float = 1.0
    """Softmax temperature; 0 means greedy decoding (always the most likely token)."""
    top_p: float = 1.0
    """Nucleus sampling: sample only from the smallest token set whose probability reaches top_p (1 = off)."""
    ignore_eos: bool = False
    """Keep generating past the end-of-turn token until max_new_tokens (for probes and benchmarks)."""

    @property
    def greedy(self) -> bool:
        """True when decoding always takes the most likely token."""
        return self.temperature == 0.0

    def validate(self) -> None:
        require(self.max_new_tokens >= 1, "max_new_tokens", f"must be at least 1 (got {self.max_new_tokens})")
        require(self.temperature >= 0.0, "temperature", f"must be >= 0, 0 meaning greedy (got {self.temperature})")
        require(0.0 < self.top_p <= 1.0, "top_p", f"must be in (0, 1] (got {self.top_p})")


@dataclass
class GeneratorConfig:
    """The inference engine that serves the policy's LoRA adapter versions during rollouts and evaluation."""

    name: str = "vllm"
    """``vllm`` (default; falls back to ``hf`` with a warning when vLLM cannot be imported), ``hf``
    (transformers + peft), or another registry name, entry point or ``package.module:Class``."""
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    """Default sampling for ``generate`` calls that do not pass their own."""
    seed: int = 0
    """Seed of the generator's random sampling: each rollout of a run samples on a stream derived from it and
    the rollout's name, so runs sharing an engine do not depend on each other; unless set, the run's ``seed``."""
    dtype: str = "float32"
    """Weight and activation dtype of the served model: float32, bfloat16 or float16. Keep it equal to
    ``model.dtype`` so the served adapter matches the trained one within ``check_tolerance``."""
    num_threads: int = 0
    """Threads torch (and through OpenMP vLLM's CPU kernels) uses in this process, for the generator and the
    learner; set when the generator starts, before in-process vLLM on CPU binds its threads to cores. 0 keeps
    the process's count (torch's default: the machine's physical cores; a program or test that set its own keeps
    it). Environment workers use ``environment.worker_threads`` each."""
    hf_batch_size: int = 16
    """HF generator: prompts generated together in one padded batch."""
    hf_device: str = "auto"
    """HF generator: ``auto`` (cuda when available, else cpu), ``cpu``, ``cuda`` or ``cuda:N``."""
    kv_cache_gib: float = 2.0
    """vLLM: KV cache size in GiB (engine argument ``kv_cache_memory_bytes``, the same setting as the
    environment variable VLLM_CPU_KVCACHE_SPACE on CPU). 0 lets vLLM size it (on CUDA from
    ``gpu_memory_utilization``). 2 GiB holds about 45k tokens of SmolLM2-135M in float32."""
    max_model_len: int = 4096
    """vLLM: longest prompt + completion in tokens."""
    enable_prefix_caching: bool = True
    """vLLM: reuse the KV cache of shared prompt prefixes (rollout prompts share their instructions)."""
    max_lora_rank: int = 64
    """vLLM: largest LoRA rank the engine accepts; an adapter of higher rank is refused when loaded."""
    gpu_memory_utilization: float = 0.5
    """vLLM on CUDA: fraction of GPU memory the engine may use (the rest stays for training); used when
    ``kv_cache_gib`` is 0."""
    enforce_eager: bool = True
    """vLLM: run the model eagerly (no torch.compile / CUDA graphs): faster start, slower decoding."""
    vllm_in_process: bool = True
    """vLLM: run the engine core inside this process (sets VLLM_ENABLE_V1_MULTIPROCESSING=0): no worker
    processes, so callers need no ``if __name__ == "__main__"`` guard; on CPU it also starts faster and does
    not compete for cores with a busy-polling engine process. Set false on GPUs to overlap scheduling with
    the forward pass."""
    adapter_serving: str = "auto"
    """vLLM: how an adapter version is served: ``lora`` (LoRA kernels, instant switch), ``merged`` (the
    adapter merged into the running engine's weights in place: base-model speed, no restart)
    or ``auto`` (``merged`` on CPU, where vLLM's LoRA kernels ran 5x slower than the base model here,
    ``lora`` on GPUs)."""
    check_prompt: str = DEFAULT_CHECK_PROMPT
    """Probe text of the served-adapter check, tokenized as plain text and scored teacher-forced by the
    generator (one prefill) and the training-side model (one forward); each of its tokens is one compared
    position (the default has 14 with SmolLM2's tokenizer), and each costs check time on both sides. Every
    adapted projection acts at every position (a key projection from the second on), so a longer probe adds
    positions, not layers: on the embedded model here one stale projection of the 210 failed the 14-token check
    (at position 1, 3 or 10 for the three tried), and the former 26-token default made the check 0.06-0.09 s
    slower (0.24-0.27 s against 0.18-0.19 s)."""
    check_tolerance: float = 2e-3
    """Largest allowed difference between the served and the training-side log-prob of each scored probe
    token (and largest log-prob gap a greedy tie may have). float32 engines agree to about 1e-4; raise it
    (about 0.1) for bfloat16."""

    def validate(self) -> None:
        """Range checks of this section's own fields (the loader validates ``sampling`` on its own)."""
        require(bool(self.name.strip()), "name", "must name a generator such as 'vllm' or 'hf' (got an empty string)")
        require_one_of(self.dtype, DTYPES, "dtype")
        require(self.num_threads >= 0, "num_threads", f"must be >= 0, 0 keeping the process's count (got {self.num_threads})")
        require(self.hf_batch_size >= 1, "hf_batch_size", f"must be at least 1 (got {self.hf_batch_size})")
        require_device(self.hf_device, "hf_device")
        require(
            self.kv_cache_gib >= 0, "kv_cache_gib", f"must be >= 0, 0 meaning vLLM's own sizing (got {self.kv_cache_gib})"
        )
        require(self.max_model_len >= 16, "max_model_len", f"must be at least 16 (got {self.max_model_len})")
        require(self.max_lora_rank >= 1, "max_lora_rank", f"must be at least 1 (got {self.max_lora_rank})")
        require(
            0.0 < self.gpu_memory_utilization <= 1.0,
            "gpu_memory_utilization",
            f"must be in (0, 1] (got {self.gpu_memory_utilization})",
        )
        require_one_of(self.adapter_serving, ("auto", "lora", "merged"), "adapter_serving")
        require(bool(self.check_prompt.strip()), "check_prompt", "must be a non-empty message")
        require(self.check_tolerance > 0, "check_tolerance", f"must be positive (got {self.check_tolerance})")
