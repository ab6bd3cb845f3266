"""Checkpoints with a LoRA adapter merged into the base weights, for engines served without LoRA kernels.

``W' = W + (alpha / r) * B @ A`` for every adapted projection (peft's
``merge_and_unload``), saved as an ordinary Hugging Face checkpoint with the base
model's tokenizer. Served this way a model runs at the base model's speed; the
price is a new checkpoint (and an engine restart) per adapter version.
"""

from __future__ import annotations

from pathlib import Path

import peft
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

def write_merged_checkpoint(base_model_path: Path, adapter_path: Path, destination: Path, dtype: str) -> Path:
    """Merge the adapter at ``adapter_path`` into the base model and save the result at ``destination``."""
    base = AutoModelForCausalLM.from_pretrained(base_model_path, dtype=getattr(torch, dtype))
    merged = peft.PeftModel.from_pretrained(base, adapter_path).merge_and_unload()
    merged.save_pretrained(destination, safe_serialization=True)
    AutoTokenizer.from_pretrained(base_model_path).save_pretrained(destination)
    return destination
