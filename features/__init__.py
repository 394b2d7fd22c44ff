"""The one feature module: parsing, acceptance, incremental features and the label.

Live consumer, replay, training, the notebook and the API all compute features here.
"""

from features.labels import add_future_sigma, sigma_column, spike_label
from features.online import DUPLICATE, LATE, FeatureSpec, ProductState, update
from features.pipeline import FeaturePipeline, Summary
from features.ticks import ParsedRecord, Rejection, Tick, parse_line, parse_time_ns

__all__ = [
    "DUPLICATE",
    "LATE",
    "FeaturePipeline",
    "FeatureSpec",
    "ParsedRecord",
    "ProductState",
    "Rejection",
    "Summary",
    "Tick",
    "add_future_sigma",
    "parse_line",
    "parse_time_ns",
    "sigma_column",
    "spike_label",
    "update",
]
