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
    """Median and MAD of each row of a NaN-padded matrix (NaN: no value), exactly as the
    median of a short list is computed on the row's values."""
    counts = rows.shape[1] - np.isnan(rows).sum(axis=1)
    lo, hi = (np.maximum(counts - 1, 0) // 2)[:, None], (counts // 2)[:, None]
    s = np.sort(rows, axis=1)  # NaN last
    med = (np.take_along_axis(s, lo, 1)[:, 0] + np.take_along_axis(s, hi, 1)[:, 0]) / 2
    d = np.sort(np.abs(rows - med[:, None]), axis=1)
    mad = (np.take_along_axis(d, lo, 1)[:, 0] + np.take_along_axis(d, hi, 1)[:, 0]) / 2
    return med, mad


_METRIC = {m: i for i, m in enumerate(METRICS)}
_RATIO_NAMES = tuple(RATIOS)
_RATIO_COLS = tuple((_METRIC[num], _METRIC[den]) for num, den in RATIOS.values())
Row = tuple[str, int]  # account, bucket (hour of week; -1: the ratios)


class DetectorMemory:
    """The detector's memory, a column per value: for each (account, hour of week) row the
    last ``history`` values of every metric, and per account the last ``ratio_history``
    values of each ratio; oldest first, right-aligned, NaN where nothing is known yet.

    :func:`detect` reads and updates it in place, a matrix at a time."""

    def __init__(self, model: DetectorModel) -> None:
        self.model = model
        self.rows: dict[int, dict[str, int]] = {}  # hour -> account -> seasonal slot
        self.ratio_rows: dict[str, int] = {}  # account -> ratio slot
        self.seasonal = np.full((1024, len(METRICS), model.history), np.nan)
        self.ratios = np.full((256, len(RATIOS), model.ratio_history), np.nan)
        self.size = self.ratio_size = 0

    def __len__(self) -> int:
        return self.size + self.ratio_size

    def __contains__(self, row: Row) -> bool:
        account, bucket = row
        if bucket < 0:
            return account in self.ratio_rows
        return account in self.rows.get(bucket, ())

    def _slot(self, account: str, hour: int) -> int:
        by_account = self.rows.setdefault(hour, {})
        slot = by_account.get(account)
        if slot is None:
            if self.size == len(self.seasonal):
                self.seasonal = np.concatenate([self.seasonal,
                                                np.full_like(self.seasonal, np.nan)])
            slot = by_account[account] = self.size
            self.size += 1
        return slot

    def _ratio_slot(self, account: str) -> int:
        slot = self.ratio_rows.get(account)
        if slot is None:
            if self.ratio_size == len(self.ratios):
                self.ratios = np.concatenate([self.ratios, np.full_like(self.ratios, np.nan)])
            slot = self.ratio_rows[account] = self.ratio_size
            self.ratio_size += 1
        return slot

    def put(self, row: Row, values: dict[str, list[float]]) -> None:
        """A row as stored (``{metric or ratio name: values}``); more values than the model
        keeps: the oldest are dropped."""
        account, bucket = row
        if bucket < 0:
            slot = self._ratio_slot(account)  # first: it may grow the array
            target, names = self.ratios[slot], _RATIO_NAMES
        else:
            slot = self._slot(account, bucket)
            target, names = self.seasonal[slot], METRICS
        for i, name in enumerate(names):
            kept = values.get(name, [])[-target.shape[1]:]
            target[i, :] = np.nan
            if kept:
                target[i, -len(kept):] = kept

    def put_block(self, row: Row, data: bytes) -> None:
        """A row as stored by :meth:`blocks` (float64 bytes, one line per metric or ratio,
        NaN where nothing is known); kept at the model's width (the oldest values dropped,
        or NaN in front)."""
        account, bucket = row
        if bucket < 0:
            slot = self._ratio_slot(account)
            target = self.ratios[slot]
        else:
            slot = self._slot(account, bucket)
            target = self.seasonal[slot]
        block = np.frombuffer(data, dtype=np.float64).reshape(target.shape[0], -1)
        width = min(block.shape[1], target.shape[1])
        target[:, :] = np.nan
        target[:, target.shape[1] - width:] = block[:, block.shape[1] - width:]

    def blocks(self, rows: list[Row]) -> list[bytes]:
        """The ``rows``' blocks as stored (float64 bytes; see :meth:`put_block`)."""
        out = []
        for account, bucket in rows:
            if bucket < 0:
                out.append(self.ratios[self.ratio_rows[account]].tobytes())
            else:
                out.append(self.seasonal[self.rows[bucket][account]].tobytes())
        return out

    def get(self, row: Row) -> dict[str, list[float]]:
        """A row as stored: the values known, per metric (or ratio) that has any."""
        account, bucket = row
        if bucket < 0:
            slot, names, source = self.ratio_rows.get(account), _RATIO_NAMES, self.ratios
        else:
            slot, names, source = self.rows.get(bucket, {}).get(account), METRICS, \
                self.seasonal
        if slot is None:
            return {}
        out = {}
        for i, name in enumerate(names):
            values = source[slot, i]
            known = values[~np.isnan(values)].tolist()
            if known:
                out[name] = known
        return out

    def as_dict(self) -> dict[Key, list[float]]:
        """Everything known, one list per (account, metric or ratio, bucket)."""
        out: dict[Key, list[float]] = {}
        rows = [(a, h) for h, by in self.rows.items() for a in by]
        for a, h in [*rows, *((a, -1) for a in self.ratio_rows)]:
            for name, values in self.get((a, h)).items():
                out[(a, name, h)] = values
        return out


def detect(samples: list[Sample], memory: DetectorMemory
           ) -> tuple[list[tuple[Sample, Verdict]], set[Row]]:
    """Judge each sample against the baselines, oldest first, learning as it goes: the
    verdicts (seasonal ones in time order, then as sent; then the ratios) and the memory
    rows learned. ``memory`` is updated in place.

    The decisions of the one-sample-at-a-time definition (the unit tests hold it to it),
    computed a column at a time: the samples of one hour (and, for a key sent twice in
    that hour, each repetition in turn) are judged together with numpy."""
    seasonal: list[tuple[datetime, int, Sample, Verdict]] = []
    found_ratios: list[tuple[Sample, Verdict]] = []
    touched: set[Row] = set()
    hours: dict[datetime, list[int]] = {}
    for i, s in enumerate(samples):
        hours.setdefault(s.at, []).append(i)
    for at in sorted(hours):
        h = hour_of_week(at)
        idx = hours[at]
        group = [samples[i] for i in idx]
        accounts = [s.account_id for s in group]
        metrics = np.array([_METRIC[s.metric] for s in group], dtype=np.intp)
        values = np.array([s.value for s in group], dtype=float)
        order = list(dict.fromkeys(accounts))  # the hour's accounts, first seen first
        position = {a: p for p, a in enumerate(order)}
        pos = np.array([position[a] for a in accounts], dtype=np.intp)
        slots = np.array([memory._slot(a, h) for a in order], dtype=np.intp)[pos]
        flat = slots * len(METRICS) + metrics
        touched.update((a, h) for a in order)
        if len(np.unique(flat)) == len(flat):
            layers = [np.arange(len(flat))]
        else:  # a key sent twice in the hour: each repetition after the one before
            seen: dict[int, int] = {}
            nth = []
            for f in flat.tolist():
                nth.append(seen.get(f, 0))
                seen[f] = nth[-1] + 1
            nth_arr = np.array(nth)
            layers = [np.flatnonzero(nth_arr == n) for n in range(max(nth) + 1)]
        latest = np.full((len(order), len(METRICS)), np.nan)
        for layer in layers:
            for j, v in _judge(memory, flat[layer], values[layer], metrics[layer]):
                k = int(layer[j])
                seasonal.append((at, idx[k], group[k], v))
            latest[pos[layer], metrics[layer]] = values[layer]
        found_ratios += _judge_ratios(memory, at, order, latest, touched)
    seasonal.sort(key=lambda t: (t[0], t[1]))
    return [(s, v) for _, _, s, v in seasonal] + found_ratios, touched


def _judge(memory: DetectorMemory, flat: np.ndarray, values: np.ndarray,
           metrics: np.ndarray) -> list[tuple[int, Verdict]]:
    """One column of samples (no key twice) against their histories, then learned."""
    model = memory.model
    store = memory.seasonal.reshape(-1, model.history)
    history = store[flat]
    out: list[tuple[int, Verdict]] = []
    judged = (model.history - np.isnan(history).sum(axis=1)) >= model.min_history
    if judged.any():
        med, mad = _medians(history)
        spread = np.maximum(np.maximum(1.4826 * mad, model.floor_fraction * np.abs(med)),
                            model.floor_absolute)
        z = (values - med) / spread
        swing = metrics == _METRIC["followers"]
        hit = judged & np.where(swing, np.abs(z) > model.swing_threshold,
                                z > model.threshold)
        for j in np.flatnonzero(hit).tolist():
            m, sp, v = float(med[j]), float(spread[j]), float(values[j])
            name = METRICS[int(metrics[j])]
            if swing[j]:
                t = model.swing_threshold
                out.append((j, Verdict("follower_swing", name, m - t * sp, m + t * sp, v,
                                       round(float(z[j]), 3))))
            else:
                t = model.threshold
                out.append((j, Verdict("jump", name, max(0.0, m - t * sp), m + t * sp, v,
                                       round(float(z[j]), 3))))
    store[flat, :-1] = history[:, 1:]
    store[flat, -1] = values
    return out


def _judge_ratios(memory: DetectorMemory, at: datetime, order: list[str],
                  latest: np.ndarray, touched: set[Row]) -> list[tuple[Sample, Verdict]]:
    """Forwards and comments per click of each account in the hour (``latest``: the
    hour's last value of each metric per account, in ``order``), judged and learned."""
    model = memory.model
    cols = []
    for r, (num, den) in enumerate(_RATIO_COLS):
        ok = ~np.isnan(latest[:, num]) & (latest[:, den] >= model.ratio_min_denominator)
        for p in np.flatnonzero(ok).tolist():
            cols.append((p, r))
    if not cols:
        return []
    cols.sort()  # per account, each ratio in turn
    accounts = [order[p] for p, _ in cols]
    flat = np.array([memory._ratio_slot(a) * len(RATIOS) + r
                     for a, (_, r) in zip(accounts, cols, strict=True)], dtype=np.intp)
    num = np.array([_RATIO_COLS[r][0] for _, r in cols])
    den = np.array([_RATIO_COLS[r][1] for _, r in cols])
    rows = np.array([p for p, _ in cols])
    ratios = latest[rows, num] / latest[rows, den]
    touched.update((a, -1) for a in accounts)
    store = memory.ratios.reshape(-1, model.ratio_history)  # after any slot was added
    history = store[flat]
    out: list[tuple[Sample, Verdict]] = []
    judged = (model.ratio_history - np.isnan(history).sum(axis=1)) >= model.min_history * 4
    if judged.any():
        med, mad = _medians(history)
        spread = np.maximum(np.maximum(1.4826 * mad, model.floor_fraction * np.abs(med)),
                            0.01)
        z = (ratios - med) / spread
        t = model.ratio_threshold
        for j in np.flatnonzero(judged & (z > t)).tolist():
            name = _RATIO_NAMES[cols[j][1]]
            m, sp, ratio = float(med[j]), float(spread[j]), float(ratios[j])
            out.append((Sample(accounts[j], name, at, ratio),
                        Verdict("ratio", name, max(0.0, m - t * sp), m + t * sp,
                                round(ratio, 6), round(float(z[j]), 3))))
    store[flat, :-1] = history[:, 1:]
    store[flat, -1] = ratios
    return out
