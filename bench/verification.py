"""Benchmark 11: verification's full profile screening (Art. 8¶2) of one profile.

``profile_screening``: a :class:`ProtectedRegistry` of ``protected_names`` synthetic
organs, enterprises and persons (a tenth with an alias, a hundredth with a logo) and the
configured prohibited words; each of ``screening_queries`` profiles (name + ~100-character
description + avatar hash; a third embed a protected name, some carry contact details or
reserved terms) runs ``check_profile`` - protected names (similar + contained in name and
description), logos, prohibited words, the strict name rules and the contact-detail rules -
timed as one call. Target: p99 <= 10 ms. Baseline, measured in the same run on
``screening_baseline`` profiles: the same rules with the protected names found by a linear
rapidfuzz scan plus a substring test of every name (no index).
"""

from __future__ import annotations

import random

from rapidfuzz import fuzz, process

from libs.screening import normalise
from services.verification import rules as pc
from services.verification.adapters import ProtectedRegistry
from services.verification.settings import DEFAULT_PROHIBITED_WORDS

from .common import Config, Result, log, maybe_profile, percentiles
from .screening import SUFFIXES, WARMUP, NameMaker, timed

EXTRAS = ("", "", "", "合作请加微信 abc_12345", "中国", "扫码关注", "官方发布", "新闻")


def _registry(maker: NameMaker, n: int) -> tuple[ProtectedRegistry, list[str]]:
    registry = ProtectedRegistry(base_words=DEFAULT_PROHIBITED_WORDS)
    names = []
    for i in range(n):
        name = maker.protected_name()
        names.append(name)
        kind = "person" if len(name) <= 3 else maker.rng.choice(("organ", "enterprise", "media"))
        aliases = (name[:4],) if i % 10 == 0 and len(name) > 5 else ()
        logo = f"{maker.rng.getrandbits(64):016x}" if i % 100 == 0 else None
        registry.add(pc.ProtectedEntry(f"p{i:07d}", name, kind, f"holder{i}", aliases), logo)
    return registry, names


async def run(cfg: Config) -> list[Result]:
    n, q = cfg.protected_names, cfg.screening_queries
    log(f"== profile_screening: {n:,} protected names, {q:,} profiles")
    maker = NameMaker(seed=3)
    registry, protected = _registry(maker, n)
    subject = pc.Subject("natural_person", "technology", frozenset({"someone"}))
    profiles = []
    for _ in range(q + WARMUP):
        roll = maker.rng.random()
        source = maker.rng.choice(protected)
        name = (source + maker.rng.choice(SUFFIXES) if roll < 0.2
                else maker.variant(source)[1] if roll < 0.35 else maker.account_name())
        embedded = maker.rng.choice(protected) if maker.rng.random() < 0.33 else None
        description = maker.description(100, embedded) + maker.rng.choice(EXTRAS)
        profiles.append((name, description, f"{random.Random(len(profiles)).getrandbits(64):016x}"))
    warm, profiles = profiles[:WARMUP], profiles[WARMUP:]

    def screen(p):
        return pc.check_profile(name=p[0], description=p[1], avatar_phash=p[2],
                                subject=subject, registry=registry)

    for p in warm:
        screen(p)
    with maybe_profile(cfg, "profile_screening"):
        latencies, answers = timed(screen, profiles)
    failing = sum(bool(a) for a in answers)

    norms = [normalise(name) for name in protected]
    empty = ProtectedRegistry(base_words=DEFAULT_PROHIBITED_WORDS)

    def linear(p):
        process.extract(normalise(p[0]), norms, scorer=fuzz.ratio, score_cutoff=85, limit=10)
        text = normalise(p[1])
        _ = [x for x in norms if x and x in text]
        return pc.check_profile(name=p[0], description=p[1], avatar_phash=None,
                                subject=subject, registry=empty)

    base_lat, _ = timed(linear, profiles[: cfg.screening_baseline])
    ours = percentiles(latencies)
    return [Result(
        f"profile screening (all A8.2 rules), {n:,} protected names vs linear scan",
        1 / ours["mean"], "profiles/s", 1 / percentiles(base_lat)["mean"],
        f"same rules, names by rapidfuzz scan + substring test, {len(base_lat)} profiles",
        target_p99=0.010, ours_latency=ours, baseline_latency=percentiles(base_lat),
        notes=f"{failing:,} of {q:,} profiles had findings")]
