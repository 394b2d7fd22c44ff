"""The one feature module: parsing, acceptance, incremental features and the label.

Live consumer, replay, training, the notebook and the API all compute features here. Names load
on first use, so a process that only reads ticks (the API) does not start the compiled kernels.
"""

from importlib import import_module

_EXPORTS = {
    "DUPLICATE": "features.online",
    "LATE": "features.online",
    "FeatureSpec": "features.online",
    "ProductState": "features.online",
    "update": "features.online",
    "FeaturePipeline": "features.pipeline",
    "Summary": "features.pipeline",
    "ParsedRecord": "features.ticks",
    "Rejection": "features.ticks",
    "Tick": "features.ticks",
    "parse_line": "features.ticks",
    "parse_time_ns": "features.ticks",
    "add_future_sigma": "features.labels",
    "sigma_column": "features.labels",
    "spike_label": "features.labels",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'features' has no attribute {name!r}")
    return getattr(import_module(module), name)
