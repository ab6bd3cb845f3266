"""The policy: base model resolution (``model``), the trainable LoRA policy (``lora``), prompts
(``prompts``), action extraction (``actions``) and the generators that serve it.

Submodules are imported explicitly (``from prism_agents.policies.lora import Policy``) so that
light users such as action parsing do not load torch.
"""
