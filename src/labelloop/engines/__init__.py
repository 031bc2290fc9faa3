"""Scale-out of batch work (pre-labeling, embedding, pool scoring) on a distributed engine.

`engine_for` turns an engine's name into an `Engine` (see `labelloop.workflows.engine`), once,
at the edge: the CLI and Python callers hand the result to `Project.prelabel`, `learn` and
`select`. `labelloop.engines.ray_engine` runs on Ray (install ``labelloop[ray]``); it is
imported only when a Ray engine is asked for, so the rest of labelloop works without Ray.
"""

from __future__ import annotations

from typing import Any

from ..errors import InputError
from ..workflows.engine import Engine, LocalEngine

ENGINES = ("local", "ray")


def engine_for(name: str, *, address: str | None = None, **options: Any) -> Engine:
    """The engine called `name`: ``local`` (this process) or ``ray`` (the cluster at `address`,
    default RAY_ADDRESS, else a local Ray; `options` go to `ray_engine.prelabel_ray`).

    An unknown name, or ``ray`` without Ray installed, is an `InputError`.
    """
    if name == "local":
        return LocalEngine()  # one process: a cluster address has nothing to say
    if name == "ray":
        try:
            import ray  # noqa: F401
        except ImportError as exc:
            raise InputError("--engine ray needs Ray: pip install 'labelloop[ray]'") from exc
        from .ray_engine import RayEngine

        return RayEngine(address, **options)
    raise InputError(f"engine must be one of {', '.join(ENGINES)}, not {name!r}")


__all__ = ["ENGINES", "Engine", "LocalEngine", "engine_for"]
