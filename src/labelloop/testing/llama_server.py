"""llama-cpp-python's OpenAI-compatible server, with model weights in plain CPU buffers.

Built on a CPU with AMX, llama.cpp puts weights in AMX buffers by default, whose tile
instructions run on threads that never configured their tiles: the stock server
(``python -m llama_cpp.server``) dies with SIGILL on its first request. This runs the same server,
with the same arguments, after turning that one model parameter off (the fix labelloop's own
scorer applies). Needs ``pip install 'llama-cpp-python[server]'``.

    python -m labelloop.testing.llama_server --model PATH.gguf --port 8001 --chat_format chatml
"""

from __future__ import annotations

from typing import Any


def plain_cpu_buffers() -> None:
    """Make every model that llama-cpp-python loads from now on keep its weights in plain CPU
    buffers (``use_extra_bufts = False``)."""
    import llama_cpp.llama_cpp as ll

    default = ll.llama_model_default_params
    if getattr(default, "plain_cpu_buffers", False):
        return

    def params() -> Any:
        value = default()
        value.use_extra_bufts = False
        return value

    params.plain_cpu_buffers = True  # type: ignore[attr-defined]
    ll.llama_model_default_params = params


def main() -> None:
    plain_cpu_buffers()
    from llama_cpp.server.__main__ import main as serve

    serve()


if __name__ == "__main__":
    main()
