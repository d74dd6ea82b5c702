"""The fake-traffic detector (A12.1) on generated series with injected anomalies: seasonal
hourly counters (daily and weekly cycles, Poisson-like noise) for six weeks; jumps,
abnormal forwards-per-click ratios and follower swings injected in the last three weeks.
Precision and recall per kind are printed (``-s``) and held above a floor."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

from services.credit import rules

T0 = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday
WEEKS = 6


def _noisy(rng: random.Random, lam: float) -> float:
    return float(max(0, round(rng.gauss(lam, math.sqrt(max(lam, 1.0))))))


def generate(accounts: int = 12, seed: int = 7, per_kind: int = 6):
    """Samples and the injected anomalies {(account, at): kind}."""
    rng = random.Random(seed)
    samples: list[rules.Sample] = []
    injected: dict[tuple[str, datetime], str] = {}
    hours = WEEKS * 7 * 24
    for i in range(accounts):
        acc = f"acc-{i}"
        scale = rng.uniform(80, 400)
        plan: dict[int, str] = {}
        for kind in ("jump", "ratio", "follower_swing"):
            while len([k for k in plan.values() if k == kind]) < per_kind:
                h = rng.randrange(3 * 7 * 24, hours)
                if all(abs(h - o) > 2 for o in plan):
                    plan[h] = kind
        for h in range(hours):
            at = T0 + timedelta(hours=h + 1)
            daily = 0.6 + 0.4 * math.sin((at.hour - 6) / 24 * 2 * math.pi)
            weekly = 1.2 if at.weekday() >= 5 else 1.0
            clicks = _noisy(rng, scale * daily * weekly)
            forwards = _noisy(rng, clicks * 0.05)
            comments = _noisy(rng, clicks * 0.03)
            followers = _noisy(rng, scale * 0.02 * daily)
            subscribers = _noisy(rng, scale * 0.01 * daily)
            kind = plan.get(h)
            if kind == "jump":
                clicks = round(clicks * rng.uniform(4, 10))
                forwards = _noisy(rng, clicks * 0.05)
            elif kind == "ratio":
                forwards = round(clicks * rng.uniform(0.5, 1.0))
            elif kind == "follower_swing":
                followers = round(followers + scale * rng.uniform(0.5, 2.0))
            if kind:
                injected[(acc, at)] = kind
            for metric, v in (("clicks", clicks), ("forwards", forwards),
                              ("comments", comments), ("followers", followers),
                              ("subscribers", subscribers)):
                samples.append(rules.Sample(acc, metric, at, float(v)))
    return samples, injected


MODEL = rules.DetectorModel()


def evaluate(samples, injected, model=MODEL, batch_hours: int = 24):
    """Run the detector batch by batch (a day at a time); precision and recall per kind."""
    memory: dict = {}
    found = []
    by_batch: dict[int, list] = {}
    for s in samples:
        by_batch.setdefault(int((s.at - T0).total_seconds() // 3600) // batch_hours, []
                            ).append(s)
    for b in sorted(by_batch):
        batch = by_batch[b]
        verdicts, changed = rules.detect(batch, memory, model)
        memory.update(changed)
        found += verdicts
    detected = {(s.account_id, s.at, v.kind) for s, v in found}
    figures = {}
    for kind in ("jump", "ratio", "follower_swing"):
        flagged = {(a, t) for a, t, k in detected if k == kind}
        truth = {slot for slot, k in injected.items() if k == kind}
        tp_recall = len(truth & flagged)
        tp_precision = len({slot for slot in flagged if slot in injected})
        figures[kind] = {
            "precision": tp_precision / len(flagged) if flagged else 1.0,
            "recall": tp_recall / len(truth) if truth else 1.0,
            "flagged": len(flagged), "injected": len(truth)}
    return figures


def test_A12_1_detector_precision_and_recall_per_kind_on_generated_series():
    samples, injected = generate()
    figures = evaluate(samples, injected)
    for kind, f in figures.items():
        print(f"{kind}: precision {f['precision']:.3f} recall {f['recall']:.3f} "
              f"(flagged {f['flagged']}, injected {f['injected']})")
    for kind, f in figures.items():
        assert f["precision"] >= 0.8, (kind, f)
        assert f["recall"] >= 0.8, (kind, f)


def test_A12_1_no_verdict_without_a_baseline_and_steady_traffic_is_quiet():
    model = rules.DetectorModel()
    assert rules.judge("clicks", 10_000, [100, 110], model) is None
    assert rules.judge("clicks", 120, [100, 110, 95, 105], model) is None
    v = rules.judge("clicks", 1000, [100, 110, 95, 105], model)
    assert v is not None and v.kind == "jump" and v.expected_high < 1000


def test_A12_2_follower_swings_in_both_directions_are_flagged():
    model = rules.DetectorModel()
    history = [50.0, 55, 48, 52, 51]
    assert rules.judge("followers", 600, history, model).kind == "follower_swing"
    assert rules.judge("followers", 0, [500.0, 520, 480, 510], model).kind == "follower_swing"


def test_A12_1_seasonality_a_busy_hour_is_judged_against_the_same_hour_of_week():
    model = rules.DetectorModel()
    memory = {}
    week = timedelta(days=7)
    samples = []
    for w in range(4):  # every Monday 20:00 busy (1000), Monday 04:00 quiet (50)
        samples += [rules.Sample("a", "clicks", T0 + w * week + timedelta(hours=20), 1000.0),
                    rules.Sample("a", "clicks", T0 + w * week + timedelta(hours=4), 50.0)]
    found, memory = rules.detect(samples, memory, model)
    assert found == []
    late = [rules.Sample("a", "clicks", T0 + 4 * week + timedelta(hours=4), 1000.0)]
    found, _ = rules.detect(late, memory, model)
    assert [v.kind for _, v in found] == ["jump"]
