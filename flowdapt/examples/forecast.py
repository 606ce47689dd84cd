"""Per-city forecasting: one small model per city, trained in parallel (``templates/forecast.yaml``).

``train``: ``make_series`` (synthetic daily series per city) → ``train_city`` (parameterized: a
Ridge regression on lag features per city, stored with ``flowdapt.object_store.put``) →
``summarize``. ``predict``: ``trained_cities`` → ``predict_city`` (parameterized: loads each
model from the object store and forecasts ``horizon`` days) → ``collect``.

Model parameters (``lags``, ``alpha``, ``test_days``, ``horizon``) come from the config resources
selecting the workflow (``get_run_context().config``), with the defaults below.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.linear_model import Ridge

from flowdapt import get_run_context, object_store

CITIES = ("amsterdam", "berlin", "cairo", "denver", "lima", "mumbai", "nairobi", "oslo", "perth", "seoul",
          "toronto", "zurich")
DEFAULTS: dict[str, Any] = {"lags": 7, "alpha": 1.0, "test_days": 28, "horizon": 7}
CITIES_KEY = "forecast-cities"


def model_key(city: str) -> str:
    """Object-store key of the model of ``city``."""
    return f"forecast-model-{city}"


def parameters() -> dict[str, Any]:
    """The model parameters of this run: :data:`DEFAULTS` overridden by the run's config."""
    config = get_run_context().config
    return {key: config.get(key, default) for key, default in DEFAULTS.items()}


@dataclass
class CityModel:
    """A fitted model of one city with the recent history it forecasts from."""

    city: str
    model: Ridge
    lags: int
    recent: list[float]
    mae: float

    def forecast(self, horizon: int) -> list[float]:
        """Forecast ``horizon`` days ahead, feeding each prediction back as a lag."""
        history = list(self.recent)
        for _ in range(horizon):
            features = np.asarray(history[-self.lags:])[None, :]
            history.append(float(self.model.predict(features)[0]))
        return history[len(self.recent):]


def make_series(cities: int = 8, days: int = 365, seed: int = 0) -> list[dict[str, Any]]:
    """Source stage: a synthetic daily series (level, yearly and weekly cycles, noise) per city."""
    rng = np.random.default_rng(seed)
    t = np.arange(days)
    series = []
    for index in range(cities):
        name = CITIES[index] if index < len(CITIES) else f"city-{index}"
        level, yearly, weekly = rng.uniform(50, 150), rng.uniform(5, 30), rng.uniform(1, 10)
        values = (level + yearly * np.sin(2 * np.pi * t / 365.25) + weekly * np.sin(2 * np.pi * t / 7)
                  + rng.normal(0, 3, days))
        series.append({"city": name, "values": values})
    return series


def lag_features(values: np.ndarray, lags: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``lags`` consecutive values and the value that follows each row."""
    return np.lib.stride_tricks.sliding_window_view(values[:-1], lags), values[lags:]


def train_city(series: dict[str, Any]) -> dict[str, Any]:
    """Parameterized stage: fit, score on the last ``test_days``, refit on all, store the model."""
    params = parameters()
    city, lags, test_days = series["city"], int(params["lags"]), int(params["test_days"])
    values = np.asarray(series["values"], dtype=float)
    features, targets = lag_features(values, lags)
    if len(targets) <= test_days:
        raise ValueError(f"{city}: {len(values)} days are too few for lags={lags} and test_days={test_days}")
    model = Ridge(alpha=float(params["alpha"])).fit(features[:-test_days], targets[:-test_days])
    mae = float(np.mean(np.abs(model.predict(features[-test_days:]) - targets[-test_days:])))
    model.fit(features, targets)
    object_store.put(model_key(city), CityModel(city, model, lags, values[-lags:].tolist(), mae))
    return {"city": city, "mae": round(mae, 3), "samples": len(targets), "key": model_key(city)}


def summarize(scores: list[dict[str, Any]]) -> dict[str, Any]:
    """Reduce stage: record which cities have models and summarise their scores."""
    object_store.put(CITIES_KEY, [score["city"] for score in scores])
    ranked = sorted(scores, key=lambda score: score["mae"])
    return {
        "models": len(scores),
        "mean_mae": round(sum(score["mae"] for score in scores) / len(scores), 3),
        "best": ranked[0]["city"],
        "worst": ranked[-1]["city"],
        "parameters": parameters(),
    }


def trained_cities() -> list[str]:
    """Root stage of ``predict``: the cities the last ``train`` run stored models for."""
    try:
        return object_store.get(CITIES_KEY)
    except KeyError:
        raise LookupError("no trained models in the object store: run the 'train' workflow first") from None


def predict_city(city: str) -> dict[str, Any]:
    """Parameterized stage: forecast one city ``horizon`` days ahead (run input, else config)."""
    context = get_run_context()
    horizon = int(context.input.get("horizon", parameters()["horizon"]))
    model: CityModel = object_store.get(model_key(city))
    return {"city": city, "forecast": [round(value, 2) for value in model.forecast(horizon)]}


def collect(forecasts: list[dict[str, Any]]) -> dict[str, list[float]]:
    """Reduce stage: forecasts by city."""
    return {item["city"]: item["forecast"] for item in forecasts}
