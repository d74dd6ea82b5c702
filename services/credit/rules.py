"""The credit rules, pure: the versioned scoring model (A13.1, A7.2), levels and management
grades, rumor strikes (A13.2) and the fake-traffic detector (A12.1).

Every parameter is configuration (``ScoringModel``, ``DetectorModel``); the versions are
on the events and in the explanation, so a score can be recomputed as it was decided.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from .domain import Contribution, Profile

LEVELS = ("A", "B", "C", "D", "E")
HOUR = timedelta(hours=1)


class ScoringModel(BaseModel):
    """``credit-model-v1`` (ADR 0017): start at 100, points per fact, clean days recover."""

    model_config = ConfigDict(frozen=True)

    version: str = "credit-model-v1"
    start: int = 100
    floor: int = 0
    verification_points: dict[str, int] = {"two_factor": 0, "three_factor": 5,
                                            "four_factor": 10}
    # Art. 18 categories whose violations are severe: impersonation, online violence,
    # extortion, illegal information (the rest moderate); 6 is rumors
    severe_categories: frozenset[int] = frozenset({2, 5, 7, 9})
    severe_points: int = -30
    moderate_points: int = -15
    rumor_category: int = 6
    rumor_points: int = -20
    commercial_points: int = -10  # Art. 14 categories
    # age: full weight, then half, then none
    full_weight_days: int = 365
    half_weight_days: int = 730
    measure_points: dict[str, int] = {
        # light measures only restate their violation; heavy ones count on top of it
        "warning": 0, "function_limit": 0, "stop_ads": 0, "suspend_updates": -5,
        "closure": -20, "blacklist": -30, "reregistration_ban": -20}
    anomaly_points: int = -3
    anomaly_days: int = 90
    forced_follow_points: int = -1  # per ``forced_follow_unit`` follows without consent
    forced_follow_unit: int = 10
    forced_follow_cap: int = -20
    forced_follow_days: int = 180
    clean_day_points: int = 1  # per full day since the last negative fact
    clean_day_cap: int = 20
    # lowest score of each level (below D's: E); 60 is the Weibo-like low-credit line
    thresholds: dict[str, int] = {"A": 100, "B": 80, "C": 60, "D": 40}
    grades: dict[str, str] = {"A": "trusted", "B": "normal", "C": "watch",
                              "D": "restricted", "E": "key_supervision"}
    # A13.2: strikes within a window blacklist the identity; strikes expire
    strikes_to_blacklist: int = Field(3, ge=1)
    strike_window_days: int = Field(180, ge=1)
    strike_expiry_days: int = Field(365, ge=1)


@dataclass(frozen=True)
class Score:
    score: int
    level: str
    grade: str
    contributions: list[Contribution]
    model_version: str


def level_of(score: int, model: ScoringModel) -> str:
    for level in LEVELS[:-1]:
        if score >= model.thresholds[level]:
            return level
    return "E"


def _age_factor(at: datetime, now: datetime, model: ScoringModel) -> float:
    days = (now - at).total_seconds() / 86400
    if days < model.full_weight_days:
        return 1.0
    if days < model.half_weight_days:
        return 0.5
    return 0.0


def violation_points(category: int | str | None, model: ScoringModel) -> int:
    if isinstance(category, int):
        if category == model.rumor_category:
            return model.rumor_points
        return model.severe_points if category in model.severe_categories \
            else model.moderate_points
    return model.commercial_points


def score(profile: Profile, now: datetime, model: ScoringModel) -> Score:
    """The score at ``now`` and every contribution to it, each with its source event."""
    out: list[Contribution] = [Contribution("start", model.start, None, "starting score")]
    ceiling = model.start
    last_negative: datetime | None = None
    for f in profile.facts:
        overruled = f.ref is not None and f.ref in profile.overruled
        if f.kind == "verification":
            pts = model.verification_points.get(f.detail, 0)
            ceiling = model.start + pts
            out = [c for c in out if c.kind != "verification"]
            out.append(Contribution("verification", pts, f.event_id, f"identity {f.detail}"))
            continue
        if f.kind == "violation":
            base, note = violation_points(f.category, model), f"violation category {f.category}"
        elif f.kind == "measure":
            base, note = model.measure_points.get(f.detail, 0), f"measure {f.detail}"
        elif f.kind == "appeal_upheld":
            out.append(Contribution("appeal_upheld", 0, f.event_id,
                                    f"appeal upheld: overrules {', '.join(f.overrules)}"))
            continue
        else:
            continue
        if overruled:
            out.append(Contribution(f.kind, 0, f.event_id, note + " (overruled on appeal)"))
            continue
        factor = _age_factor(f.at, now, model)
        pts = round(base * factor)
        out.append(Contribution(f.kind, pts, f.event_id,
                                note + ("" if factor == 1 else f" (age weight {factor})")))
        if pts < 0:
            last_negative = max(last_negative or f.at, f.at)
    for a in profile.anomalies:
        if (now - a.at).days < model.anomaly_days:
            out.append(Contribution("traffic_anomaly", model.anomaly_points, a.event_id,
                                    f"{a.kind} of {a.metric}: observed {a.observed:g}, "
                                    f"expected {a.expected_low:g}-{a.expected_high:g}"))
            last_negative = max(last_negative or a.at, a.at)
    recent = [f for f in profile.follows if (now - f.at).days < model.forced_follow_days]
    forced = sum(f.count for f in recent)
    if forced:
        pts = max(model.forced_follow_cap,
                  (forced // model.forced_follow_unit) * model.forced_follow_points)
        out.append(Contribution("forced_follows", pts, recent[-1].event_id,
                                f"{forced} follows without consent"))
        if pts < 0:
            last_negative = max(last_negative or recent[-1].at, recent[-1].at)
    for o in profile.overrides:
        if o.expires_at > now:
            out.append(Contribution("override", o.points, o.event_id,
                                    f"override by {o.by}: {o.reason} (until "
                                    f"{o.expires_at.isoformat()})"))
    raw = sum(c.points for c in out)
    if last_negative is not None:
        clean = max(0, (now - last_negative).days)
        bonus = min(model.clean_day_cap, clean * model.clean_day_points)
        if bonus:
            out.append(Contribution("clean_days", bonus, None, f"{clean} clean day(s), capped "
                                                               f"at {model.clean_day_cap}"))
            raw += bonus
    value = max(model.floor, min(ceiling + sum(c.points for c in out if c.kind == "override"
                                               and c.points > 0), raw))
    level = level_of(value, model)
    return Score(value, level, model.grades[level], out, model.version)


def live_strikes(strikes: dict[str, datetime], now: datetime, model: ScoringModel
                 ) -> list[str]:
    """Strikes not expired at ``now`` (A13.2), oldest first."""
    horizon = now - timedelta(days=model.strike_expiry_days)
    return [s for s, at in sorted(strikes.items(), key=lambda kv: kv[1]) if at > horizon]


def strikes_in_window(strikes: dict[str, datetime], now: datetime, model: ScoringModel
                      ) -> list[str]:
    """Live strikes within the blacklist window ending ``now``."""
    start = now - timedelta(days=min(model.strike_window_days, model.strike_expiry_days))
    return [s for s, at in sorted(strikes.items(), key=lambda kv: kv[1]) if at > start]


# -- the fake-traffic detector (A12.1) -------------------------------------------------------
METRICS = ("subscribers", "followers", "clicks", "forwards", "comments")
RATIOS = {"forwards_per_click": ("forwards", "clicks"),
          "comments_per_click": ("comments", "clicks")}


class DetectorModel(BaseModel):
    """Robust seasonal baselines: per account, metric and hour of week, the last
    ``history`` values; a sample is anomalous when its robust z-score (against the median
    and 1.4826 x MAD, floored) exceeds ``threshold``."""

    model_config = ConfigDict(frozen=True)

    version: str = "traffic-detector-v1"
    history: int = Field(6, ge=3)  # values kept per hour of week
    min_history: int = Field(3, ge=2)  # before that, no verdict
    threshold: float = 6.0
    swing_threshold: float = 6.0  # followers: both directions
    floor_fraction: float = 0.1  # the MAD's floor, as a fraction of the median
    floor_absolute: float = 2.0
    ratio_history: int = 48  # ratio values kept per account (not seasonal)
    ratio_threshold: float = 6.0
    ratio_min_denominator: float = 20.0


def hour_of_week(at: datetime) -> int:
    return at.weekday() * 24 + at.hour


@dataclass(frozen=True)
class Verdict:
    kind: str
    metric: str
    expected_low: float
    expected_high: float
    observed: float
    score: float


@dataclass(frozen=True)
class Sample:
    """One counter sample: the count of ``metric`` in the hour ending at ``at``."""

    account_id: str
    metric: str
    at: datetime
    value: float


Key = tuple[str, str, int]


_NUMERATORS = {num: name for name, (num, _) in RATIOS.items()}


def rows_of(samples: list[Sample]) -> set[tuple[str, int]]:
    """The (account, bucket) rows of the detector's memory that ``samples`` read and
    learn: their hours of week, and bucket -1 (the ratios) for accounts with a numerator."""
    hours: dict[datetime, int] = {}
    rows: set[tuple[str, int]] = set()
    for s in samples:
        h = hours.get(s.at)
        if h is None:
            h = hours[s.at] = hour_of_week(s.at)
        rows.add((s.account_id, h))
        if s.metric in _NUMERATORS:
            rows.add((s.account_id, -1))
    return rows


def _medians(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Median and MAD of each row of a NaN-padded matrix (NaN: no value), exactly as
    :func:`median` computes them on the row's values."""
    counts = rows.shape[1] - np.isnan(rows).sum(axis=1)
    lo, hi = (np.maximum(counts - 1, 0) // 2)[:, None], (counts // 2)[:, None]
    s = np.sort(rows, axis=1)  # NaN last
    med = (np.take_along_axis(s, lo, 1)[:, 0] + np.take_along_axis(s, hi, 1)[:, 0]) / 2
    d = np.sort(np.abs(rows - med[:, None]), axis=1)
    mad = (np.take_along_axis(d, lo, 1)[:, 0] + np.take_along_axis(d, hi, 1)[:, 0]) / 2
    return med, mad


def _matrix(histories: list[list[float]]) -> np.ndarray:
    """Histories as one float matrix, left-padded with NaN to the longest."""
    width = max(map(len, histories), default=0) or 1
    return np.array([[_NAN] * (width - len(h)) + h if len(h) < width else h
                     for h in histories], dtype=float)


_NAN = float("nan")


def detect(samples: list[Sample], memory: dict[Key, list[float]], model: DetectorModel
           ) -> tuple[list[tuple[Sample, Verdict]], dict[Key, list[float]]]:
    """Judge each sample against the baselines, oldest first, learning as it goes; the
    verdicts (seasonal ones in sample order, then the ratios) and the baselines that
    changed.

    The same decisions as :func:`judge` and :func:`judge_ratio` applied one sample at a
    time, computed a column at a time: the samples of one hour (and, for a key sent twice
    in that hour, each repetition in turn) are judged together with numpy."""
    changed: dict[Key, list[float]] = {}
    seasonal: list[tuple[int, Sample, Verdict]] = []
    found_ratios: list[tuple[Sample, Verdict]] = []
    hours: dict[datetime, list[int]] = {}
    for i, s in enumerate(samples):
        hours.setdefault(s.at, []).append(i)
    for at in sorted(hours):
        h = hour_of_week(at)
        layers: list[list[int]] = []
        seen: dict[tuple[str, str], int] = {}
        values: dict[str, dict[str, float]] = {}
        for i in hours[at]:
            s = samples[i]
            n = seen.get((s.account_id, s.metric), 0)
            seen[(s.account_id, s.metric)] = n + 1
            if n == len(layers):
                layers.append([])
            layers[n].append(i)
            values.setdefault(s.account_id, {})[s.metric] = s.value
        for layer in layers:
            _judge_layer(samples, layer, h, memory, changed, model, seasonal)
        _judge_ratios(at, values, memory, changed, model, found_ratios)
    seasonal.sort(key=lambda t: (t[1].at, t[0]))  # time order, then as sent
    return [(s, v) for _, s, v in seasonal] + found_ratios, changed


def _judge_layer(samples: list[Sample], layer: list[int], h: int,
                 memory: dict[Key, list[float]], changed: dict[Key, list[float]],
                 model: DetectorModel, out: list[tuple[int, Sample, Verdict]]) -> None:
    keys = [(samples[i].account_id, samples[i].metric, h) for i in layer]
    histories = [changed.get(k) or memory.get(k) or [] for k in keys]
    observed = np.array([samples[i].value for i in layer], dtype=float)
    judged = np.array([len(x) >= model.min_history for x in histories])
    if judged.any():
        med, mad = _medians(_matrix(histories))
        spread = np.maximum(np.maximum(1.4826 * mad, model.floor_fraction * np.abs(med)),
                            model.floor_absolute)
        z = (observed - med) / spread
        swing = np.array([samples[i].metric == "followers" for i in layer])
        hit = judged & np.where(swing, np.abs(z) > model.swing_threshold,
                                z > model.threshold)
        for j in np.flatnonzero(hit):
            s, m, sp = samples[layer[j]], float(med[j]), float(spread[j])
            if swing[j]:
                t = model.swing_threshold
                v = Verdict("follower_swing", s.metric, m - t * sp, m + t * sp, s.value,
                            round(float(z[j]), 3))
            else:
                t = model.threshold
                v = Verdict("jump", s.metric, max(0.0, m - t * sp), m + t * sp, s.value,
                            round(float(z[j]), 3))
            out.append((layer[j], s, v))
    keep = model.history
    for k, x, i in zip(keys, histories, layer, strict=True):
        changed[k] = [*x, samples[i].value][-keep:]


def _judge_ratios(at: datetime, values: dict[str, dict[str, float]],
                  memory: dict[Key, list[float]], changed: dict[Key, list[float]],
                  model: DetectorModel, out: list[tuple[Sample, Verdict]]) -> None:
    rows: list[tuple[str, str, float]] = []
    for account_id, v in values.items():
        for name, (num, den) in RATIOS.items():
            if num in v and v.get(den, 0) >= model.ratio_min_denominator:
                rows.append((account_id, name, v[num] / v[den]))
    if not rows:
        return
    keys = [(a, name, -1) for a, name, _ in rows]
    histories = [changed.get(k) or memory.get(k) or [] for k in keys]
    judged = np.array([len(x) >= model.min_history * 4 for x in histories])
    if judged.any():
        ratios = np.array([r for _, _, r in rows], dtype=float)
        med, mad = _medians(_matrix(histories))
        spread = np.maximum(np.maximum(1.4826 * mad, model.floor_fraction * np.abs(med)),
                            0.01)
        z = (ratios - med) / spread
        t = model.ratio_threshold
        for j in np.flatnonzero(judged & (z > t)):
            a, name, ratio = rows[j]
            m, sp = float(med[j]), float(spread[j])
            out.append((Sample(a, name, at, ratio),
                        Verdict("ratio", name, max(0.0, m - t * sp), m + t * sp,
                                round(ratio, 6), round(float(z[j]), 3))))
    for k, x, (_, _, ratio) in zip(keys, histories, rows, strict=True):
        changed[k] = [*x, ratio][-model.ratio_history:]
