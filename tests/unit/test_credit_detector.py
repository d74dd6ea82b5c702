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
    memory = rules.DetectorMemory(model)
    found = []
    by_batch: dict[int, list] = {}
    for s in samples:
        by_batch.setdefault(int((s.at - T0).total_seconds() // 3600) // batch_hours, []
                            ).append(s)
    for b in sorted(by_batch):
        batch = by_batch[b]
        verdicts, _ = rules.detect(batch, memory)
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


def _judge(metric: str, value: float, history: list[float], model=MODEL):
    """The verdict on one sample whose slot remembers ``history``."""
    at = T0 + timedelta(hours=20)
    memory = rules.DetectorMemory(model)
    memory.put(("a", rules.hour_of_week(at)), {metric: [float(v) for v in history]})
    found, _ = rules.detect([rules.Sample("a", metric, at, float(value))], memory)
    assert len(found) <= 1
    return found[0][1] if found else None


def test_A12_1_no_verdict_without_a_baseline_and_steady_traffic_is_quiet():
    assert _judge("clicks", 10_000, [100, 110]) is None
    assert _judge("clicks", 120, [100, 110, 95, 105]) is None
    v = _judge("clicks", 1000, [100, 110, 95, 105])
    assert v is not None and v.kind == "jump" and v.expected_high < 1000


def test_A12_2_follower_swings_in_both_directions_are_flagged():
    history = [50.0, 55, 48, 52, 51]
    assert _judge("followers", 600, history).kind == "follower_swing"
    assert _judge("followers", 0, [500.0, 520, 480, 510]).kind == "follower_swing"


def test_A12_1_seasonality_a_busy_hour_is_judged_against_the_same_hour_of_week():
    memory = rules.DetectorMemory(rules.DetectorModel())
    week = timedelta(days=7)
    samples = []
    for w in range(4):  # every Monday 20:00 busy (1000), Monday 04:00 quiet (50)
        samples += [rules.Sample("a", "clicks", T0 + w * week + timedelta(hours=20), 1000.0),
                    rules.Sample("a", "clicks", T0 + w * week + timedelta(hours=4), 50.0)]
    found, _ = rules.detect(samples, memory)
    assert found == []
    late = [rules.Sample("a", "clicks", T0 + 4 * week + timedelta(hours=4), 1000.0)]
    found, _ = rules.detect(late, memory)
    assert [v.kind for _, v in found] == ["jump"]


# -- the column-at-a-time detector decides exactly as one sample at a time ------------------
def _median(values):
    s = sorted(values)
    h = len(s) // 2
    return s[h] if len(s) % 2 else (s[h - 1] + s[h]) / 2


def _one_at_a_time(samples, memory, model):
    """The detector's definition, a sample at a time (the oracle for ``rules.detect``)."""
    changed, found, by_time = {}, [], {}
    for s in sorted(samples, key=lambda s: s.at):
        key = (s.account_id, s.metric, rules.hour_of_week(s.at))
        history = changed.get(key) or memory.get(key) or []
        if len(history) >= model.min_history:
            med = _median(history)
            spread = max(1.4826 * _median([abs(v - med) for v in history]),
                         model.floor_fraction * abs(med), model.floor_absolute)
            z = (s.value - med) / spread
            if s.metric == "followers" and abs(z) > model.swing_threshold:
                t = model.swing_threshold
                found.append((s, rules.Verdict("follower_swing", s.metric, med - t * spread,
                                               med + t * spread, s.value, round(z, 3))))
            elif s.metric != "followers" and z > model.threshold:
                t = model.threshold
                found.append((s, rules.Verdict("jump", s.metric, max(0.0, med - t * spread),
                                               med + t * spread, s.value, round(z, 3))))
        changed[key] = [*history, s.value][-model.history:]
        by_time.setdefault((s.account_id, s.at), {})[s.metric] = s.value
    for (account_id, at), values in by_time.items():
        for name, (num, den) in rules.RATIOS.items():
            if num not in values or values.get(den, 0) < model.ratio_min_denominator:
                continue
            ratio = values[num] / values[den]
            key = (account_id, name, -1)
            history = changed.get(key) or memory.get(key) or []
            if len(history) >= model.min_history * 4:
                med = _median(history)
                spread = max(1.4826 * _median([abs(v - med) for v in history]),
                             model.floor_fraction * abs(med), 0.01)
                z = (ratio - med) / spread
                t = model.ratio_threshold
                if z > t:
                    found.append((rules.Sample(account_id, name, at, ratio),
                                  rules.Verdict("ratio", name, max(0.0, med - t * spread),
                                                med + t * spread, round(ratio, 6),
                                                round(z, 3))))
            changed[key] = [*history, ratio][-model.ratio_history:]
    return found, changed


def test_A12_1_column_at_a_time_detector_decides_as_one_sample_at_a_time():
    """Same verdicts, same order, same learned baselines: on the generated series in daily
    batches, and on a batch that repeats keys, mixes hours and is shuffled."""
    samples, _ = generate(accounts=6, seed=3, per_kind=4)
    rng = random.Random(5)
    by_day: dict[int, list] = {}
    for s in samples:
        by_day.setdefault(int((s.at - T0).total_seconds() // 86400), []).append(s)
    ours = rules.DetectorMemory(MODEL)
    oracle: dict = {}
    verdicts = 0
    for day in sorted(by_day):
        batch = by_day[day]
        if day % 5 == 0:  # repeated keys and out-of-order samples
            batch = batch + rng.sample(batch, 20)
            rng.shuffle(batch)
        got, touched = rules.detect(batch, ours)
        want, want_changed = _one_at_a_time(batch, oracle, MODEL)
        assert got == want, day
        oracle.update(want_changed)
        assert ours.as_dict() == oracle, day
        assert touched == {(a, k) for a, _, k in want_changed}, day
        verdicts += len(got)
    assert verdicts > 20  # the comparison covered anomalies, not only quiet traffic


def test_A12_1_the_memory_grows_past_its_first_size_and_gives_back_what_it_was_given():
    memory = rules.DetectorMemory(MODEL)
    rows = {(f"acc-{i}", i % 168 if i % 3 else -1): (
        {"clicks": [float(i), i + 1.0], "followers": [2.0]} if i % 3 else
        {"forwards_per_click": [0.1 * i]}) for i in range(5000)}
    for row, values in rows.items():
        memory.put(row, values)
    assert len(memory) == len(rows)
    assert all(memory.get(row) == values for row, values in rows.items())
    assert memory.get(("nobody", 3)) == {} and ("nobody", 3) not in memory
    # more values than the model keeps: the oldest go
    memory.put(("acc-1", 1), {"clicks": [float(v) for v in range(10)]})
    assert memory.get(("acc-1", 1)) == {"clicks": [4.0, 5.0, 6.0, 7.0, 8.0, 9.0]}
