"""vLLM general-plugin entry point (`vllm.general_plugins` = loraplex).

vLLM runs it in each of its processes. It applies the CPU LoRA path everywhere (our LoRA ops with
vLLM's compiler kept on, `serving/lora_punica.py`; and the mask fix for vLLM's own ops, used when
`LORAPLEX_ENGINE_LORA_OPS=vllm`), and registers the registry resolver where the engine was
started by `loraplex serve engine` (which sets `LORAPLEX_ENGINE_BASE_MODEL`); anything else
running vLLM in this environment is left alone.
"""

from __future__ import annotations

import os


def register() -> None:
    from serving import lora_patch, lora_punica

    lora_patch.apply()
    lora_punica.apply()
    if not os.environ.get("LORAPLEX_ENGINE_BASE_MODEL"):
        return
    from vllm.lora.resolver import LoRAResolverRegistry

    from registry.settings import Settings
    from serving.resolver import make_vllm_resolver

    LoRAResolverRegistry.register_resolver("loraplex", make_vllm_resolver(Settings()))
