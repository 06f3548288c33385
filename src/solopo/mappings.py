"""Nested-mapping helpers shared by the config readers, the job slices and the benchmarks."""
from __future__ import annotations

import copy
from collections.abc import Mapping


def deep_merge(base: Mapping, over: Mapping | None) -> dict:
    """A new dict: `base` with `over` laid on top the way Snakemake merges config files
    (snakemake.utils.update_config): nested mappings merge key by key, any other value replaces.
    Neither argument is changed and the result shares no mutable value with them."""
    out = copy.deepcopy(dict(base))
    for key, value in (over or {}).items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out
