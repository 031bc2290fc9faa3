"""Words for a kappa or alpha value, after Landis & Koch (1977)."""

from __future__ import annotations

import math

LANDIS_KOCH: tuple[tuple[float, str], ...] = (
    (0.0, "poor"),
    (0.20, "slight"),
    (0.40, "fair"),
    (0.60, "moderate"),
    (0.80, "substantial"),
    (1.0, "almost perfect"),
)


def landis_koch(value: float | None) -> str:
    """'poor' below 0, then slight (to 0.20), fair (0.21–0.40), moderate (0.41–0.60),
    substantial (0.61–0.80) and almost perfect (0.81–1.00); 'undefined' for None or NaN.

    Upper bounds are inclusive, so 0.20 is slight and 0.80 substantial. The scale is a convention,
    not a test: read it next to the interval and the number of items.
    """
    if value is None or math.isnan(value):
        return "undefined"
    if value < 0:
        return "poor"
    for upper, word in LANDIS_KOCH[1:]:
        if value <= upper + 1e-12:
            return word
    return "almost perfect"
