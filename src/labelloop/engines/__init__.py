"""Scale-out of batch work (pre-labeling, embedding, pool scoring) on a distributed engine.

`labelloop.engines.ray_engine` runs on Ray (install ``labelloop[ray]``); it is imported only
when a Ray engine is asked for, so the rest of labelloop works without Ray.
"""

ENGINES = ("local", "ray")

__all__ = ["ENGINES"]
