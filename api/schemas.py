"""Request and response bodies of /predict, built from the model's feature list.

Each feature is a required, finite JSON number of magnitude at most 1e9 (no strings,
booleans, nulls, NaN or infinities); unknown fields are refused, so a typo in a feature name is a 422 that names it,
not a silently imputed value. The batch holds 1 to ``max_rows`` rows.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, create_model

# Real features are far smaller (volatilities ~1e-5, spreads and tick rates < 1e4); the bound
# keeps finite but absurd values (1e300) from overflowing inside a model's scaling.
MAX_ABS_VALUE = 1e9
FiniteNumber = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=-MAX_ABS_VALUE, le=MAX_ABS_VALUE)]


def request_model(features: tuple[str, ...], max_rows: int, example: dict[str, float] | None = None) -> type[BaseModel]:
    """The PredictRequest model: ``{"rows": [{feature: number, ...}, ...]}``."""
    row_config = ConfigDict(extra="forbid", protected_namespaces=(),
                            json_schema_extra={"example": example} if example else None)
    row = create_model(  # type: ignore[call-overload]
        "FeatureRow", __config__=row_config,
        product_id=(str | None, Field(default=None, max_length=64,
                                      description="product, e.g. BTC-USD: picks its tau; without it, the tau of all "
                                                  "training rows")),
        **{name: (FiniteNumber, Field(description=f"feature {name} (see docs/feature_spec.md)")) for name in features},
    )
    return create_model(  # type: ignore[call-overload]
        "PredictRequest", __config__=ConfigDict(extra="forbid"),
        rows=(list[row], Field(min_length=1, max_length=max_rows,
                               description=f"1 to {max_rows} feature rows, each with every model feature")),
    )


class PredictResponse(BaseModel):
    scores: list[float] = Field(description="spike probability of each row, in request order")
    sigmas: list[float] = Field(description="forecast of sigma_future_60s for each row, whatever tau: "
                                            "apply your own threshold to it")
    alerts: list[bool] = Field(description="score >= threshold, the cut chosen on validation for the alert budget")
    threshold: float
    model_variant: str = Field(description="ml or baseline")
    model: str = Field(description="model name (e.g. logreg, zscore)")
    version: str = Field(description="registry version, or 'local' for a model folder")
    ts: str = Field(description="UTC time of the prediction (ISO 8601)")


class ErrorItem(BaseModel):
    field: str
    message: str
    type: str


class ErrorResponse(BaseModel):
    detail: str
    errors: list[ErrorItem] = []
    request_id: str | None = None
