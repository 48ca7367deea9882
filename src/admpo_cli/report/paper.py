"""The paper's published ADMPO-OFF scores (Tables 1 and 2; normalised, mean of 5 seeds)."""

from __future__ import annotations

PAPER_ADMPO_OFF = {
    "hopper-random-v2": 32.7, "hopper-medium-v2": 107.4, "hopper-medium-replay-v2": 104.4,
    "hopper-medium-expert-v2": 112.7,
    "halfcheetah-random-v2": 45.4, "halfcheetah-medium-v2": 72.2, "halfcheetah-medium-replay-v2": 67.6,
    "halfcheetah-medium-expert-v2": 103.7,
    "walker2d-random-v2": 22.2, "walker2d-medium-v2": 93.2, "walker2d-medium-replay-v2": 95.6,
    "walker2d-medium-expert-v2": 114.9,
    "neorl-hopper-low": 22.3, "neorl-hopper-medium": 51.5, "neorl-hopper-high": 87.6,
    "neorl-halfcheetah-low": 52.8, "neorl-halfcheetah-medium": 69.3, "neorl-halfcheetah-high": 84.0,
    "neorl-walker2d-low": 55.9, "neorl-walker2d-medium": 70.1, "neorl-walker2d-high": 82.2,
}
