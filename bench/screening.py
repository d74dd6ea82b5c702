"""Benchmarks 8-9: name screening (``libs.screening``) against a linear rapidfuzz scan.

- ``name_similarity`` (Art. 8¶3): a :class:`NameIndex` of ``closed_names`` synthetic
  closed-account names; each of ``screening_queries`` queries (30 % exact copies of
  indexed names, 40 % variants of them: punctuation or a space inserted, traditional
  characters, one character substituted, a suffix appended; 30 % new names) runs
  ``similar(q)`` as registration screens a new name (labels stripped, closed names of 6+
  characters inside it: ADR 0024) then ``contained_in(q)``, timed together. Target: p99
  <= 5 ms.
- ``protected_name_screening`` (Art. 8¶2): ``protected_names`` organs, enterprises and
  persons; each of ``screening_queries`` profiles runs ``similar(name)``,
  ``contained_in(name)`` and ``contained_in(description)`` (~100 characters), timed
  together; a third of the names and of the descriptions embed a protected name.
  Target: p99 <= 10 ms.

Baseline, measured in the same run for ``screening_baseline`` queries: what one writes
without an index, ``rapidfuzz.process.extract(normalise(q), all_normalised_names,
scorer=fuzz.ratio, score_cutoff=85)`` (plus, for profiles, a substring test of every
protected name against the description). Sizes: ``closed_names``, ``protected_names``.

Names are built from words, not random characters: a few words are in thousands of names
(官方, 科技...), most are rare, and the bigram index's cost depends on that skew. Words
are Zipf-weighted strings of the 3,755 level-1 characters of GB 2312 (the common ones),
with region prefixes, business suffixes, Latin and digits.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import itertools
import json
import random
import sys
import time
from pathlib import Path

from opencc import OpenCC
from rapidfuzz import fuzz, process

from libs.screening import Affixes, NameIndex, normalise

from .common import BENCH_DIR, Config, Result, log, maybe_profile, percentiles

REGIONS = ("北京", "上海", "广州", "深圳", "杭州", "成都", "重庆", "武汉", "南京", "西安",
           "天津", "苏州", "长沙", "郑州", "青岛", "中国", "全国", "江苏", "浙江", "广东",
           "山东", "河南", "四川", "湖北", "福建", "云南", "黑龙江", "内蒙古")
SUFFIXES = ("官方", "公众号", "服务号", "订阅号", "科技", "文化", "传媒", "工作室", "资讯",
            "生活", "日报", "商城", "俱乐部", "教育", "健康", "美食", "旅游", "在线", "频道",
            "之家", "小站", "研究院", "联盟", "网", "汇", "说", "圈", "社")
LATIN = ("TV", "APP", "5G", "AI", "Pro", "2024", "123", "VIP", "Club", "Go", "Max", "360",
         "abc", "Plus", "001", "V", "Q", "IT", "CEO", "Lab")
ORGANS = ("人民政府", "公安局", "人民法院", "人民检察院", "教育局", "卫生健康委员会",
          "市场监督管理局", "税务局", "发展和改革委员会", "生态环境局", "交通运输局",
          "委员会", "人民代表大会常务委员会", "应急管理局", "文化和旅游局")
COMPANY = ("有限公司", "集团", "股份有限公司", "银行", "科技有限公司", "控股集团", "实业")
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾萧田董袁潘"
PUNCT = (" ", "·", ".", "-", "_", "\u3000", "\u200b", "、", "|", "*")
THRESHOLD = 0.85
CONTAINED_MIN_LENGTH = 6  # registration's default (ADR 0024)
WARMUP = 200
RESULTS_MARK = "@@screening-results "


def common_chars() -> list[str]:
    """GB 2312 level 1: the 3,755 most common Chinese characters."""
    out = []
    for hi, lo in itertools.product(range(0xB0, 0xD8), range(0xA1, 0xFF)):
        try:
            out.append(bytes((hi, lo)).decode("gb2312"))
        except UnicodeDecodeError:
            pass
    return out


class NameMaker:
    """Realistic-looking names and texts; every method draws from one seeded RNG."""

    def __init__(self, seed: int = 1, vocabulary: int = 30_000) -> None:
        self.rng = rng = random.Random(seed)
        self.chars = chars = common_chars()
        rng.shuffle(chars)
        char_weights = list(itertools.accumulate(1 / (rank + 20) for rank in range(len(chars))))
        words: set[str] = set()
        while len(words) < vocabulary:
            size = rng.choices((1, 2, 3), (1, 7, 2))[0]
            words.add("".join(rng.choices(chars, cum_weights=char_weights, k=size)))
        self.words = sorted(words)
        rng.shuffle(self.words)
        self.word_weights = list(itertools.accumulate(
            1 / (rank + 30) ** 0.9 for rank in range(len(self.words))))
        self._s2t = OpenCC("s2t")

    def word(self) -> str:
        return self.rng.choices(self.words, cum_weights=self.word_weights)[0]

    def account_name(self) -> str:
        rng = self.rng
        parts = [rng.choice(REGIONS)] if rng.random() < 0.25 else []
        words = rng.choice((1, 1, 2, 2, 2, 3))
        parts.extend(self.word() for _ in range(words))
        if rng.random() < (0.8 if words == 1 else 0.4):
            parts.append(rng.choice(SUFFIXES))
        if rng.random() < 0.12:
            parts.insert(rng.randrange(len(parts) + 1), rng.choice(LATIN))
        name = "".join(parts)[:12]
        return name if len(name) >= 2 else name + self.word()

    def protected_name(self) -> str:
        """An organ, an enterprise or a person: the Art. 8¶2 categories."""
        rng = self.rng
        kind = rng.random()
        if kind < 0.3:
            city = rng.choice(REGIONS) + rng.choice(("", "市", "省"))
            return city + rng.choice(("", self.word())) + rng.choice(ORGANS)
        if kind < 0.7:
            return rng.choice((*REGIONS, "")) + self.word() + self.word() + rng.choice(COMPANY)
        return rng.choice(SURNAMES) + "".join(rng.choices(self.chars[:1500], k=rng.choice((1, 2))))

    def description(self, size: int = 100, embed: str | None = None) -> str:
        words: list[str] = []
        while sum(map(len, words)) < size:
            words.append(self.word())
            if self.rng.random() < 0.15:
                words.append(self.rng.choice("，。！、"))
        text = "".join(words)[:size]
        if embed:
            at = self.rng.randrange(len(text) + 1)
            text = text[:at] + embed + text[at:]
        return text

    def variant(self, name: str) -> tuple[str, str]:
        """(kind, variant) of an existing name, as someone dodging a check would write it."""
        rng = self.rng
        kind = rng.choice(("punctuation", "traditional", "substituted", "suffix"))
        if kind == "punctuation":
            at = rng.randrange(1, max(2, len(name)))
            return kind, name[:at] + rng.choice(PUNCT) + name[at:]
        if kind == "traditional":
            return kind, self._s2t.convert(name)
        if kind == "substituted":
            at = rng.randrange(len(name))
            return kind, name[:at] + rng.choice(self.chars) + name[at + 1:]
        return kind, name + rng.choice(SUFFIXES)


def rss_mb() -> float:
    """Resident set size of this process (MB), from /proc."""
    gc.collect()
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def build(names: list[str], prefix: str) -> tuple[NameIndex, float, float, str]:
    """The index, its build seconds, the RSS it added (MB) and a note on that figure."""
    before = rss_mb()
    start = time.perf_counter()
    index = NameIndex()
    index.bulk_load((f"{prefix}-{i:07d}", name) for i, name in enumerate(names))
    seconds = time.perf_counter() - start
    grown = rss_mb() - before
    strings = sum(map(sys.getsizeof, names)) / 2**20
    memory = (f"RSS +{grown:,.0f} MB for the index (the {len(names):,} name strings, "
              f"{strings:,.0f} MB, were in memory before)")
    log(f"   built in {seconds:.1f} s ({len(set(names)):,} distinct names), {memory}")
    return index, seconds, grown, memory


def memory_row(what: str, mb: float, note: str) -> Result:
    return Result(f"{what}: memory (reference)", mb, "MB RSS", None, "", reference=True,
                  notes=note)


def timed(fn, items: list) -> tuple[list[float], list]:
    pc = time.perf_counter
    latencies, answers = [], []
    for item in items:
        t = pc()
        answer = fn(item)
        latencies.append(pc() - t)
        answers.append(answer)
    return latencies, answers


def share(flags: list[bool]) -> str:
    return f"{sum(flags)}/{len(flags)}" if flags else "-"


async def run_name_similarity(cfg: Config) -> list[Result]:
    return await in_fresh_process("name_similarity", cfg)


async def run_protected_names(cfg: Config) -> list[Result]:
    return await in_fresh_process("protected_name_screening", cfg)


async def in_fresh_process(name: str, cfg: Config, module: str = "bench.screening"
                           ) -> list[Result]:
    """Run a benchmark in a new interpreter and collect its results.

    Its memory figure is an RSS difference, which only means something in a process that
    has not freed a large heap before: the allocator keeps such memory and reuses it, so
    after another benchmark the growth reads as nearly nothing.
    """
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", module, name, json.dumps(dataclasses.asdict(cfg)),
        stdout=asyncio.subprocess.PIPE, cwd=BENCH_DIR.parent)
    assert proc.stdout is not None
    results: list[Result] = []
    async for raw in proc.stdout:
        line = raw.decode().rstrip("\n")
        if line.startswith(RESULTS_MARK):
            results = [Result(**row) for row in json.loads(line[len(RESULTS_MARK):])]
        else:
            log(line)
    if await proc.wait() != 0 or not results:
        raise RuntimeError(f"{name} failed in its process (exit code {proc.returncode})")
    return results


def name_similarity(cfg: Config) -> list[Result]:
    n, q = cfg.closed_names, cfg.screening_queries
    log(f"== name_similarity: {n:,} closed names, {q:,} queries")
    maker = NameMaker(seed=1)
    names = [maker.account_name() for _ in range(n)]
    index, build_s, grown, memory = build(names, "closed")

    queries: list[tuple[str, str]] = []  # (kind, query)
    for _ in range(q + WARMUP):
        roll, source = maker.rng.random(), maker.rng.choice(names)
        if roll < 0.3:
            queries.append(("exact", source))
        elif roll < 0.7:
            queries.append(maker.variant(source))
        else:
            queries.append(("new", maker.account_name()))
    warm, queries = queries[:WARMUP], queries[WARMUP:]
    affixes = Affixes()

    def screen(query: str):
        return (index.similar(query, threshold=THRESHOLD, affixes=affixes,
                              contained_min_length=CONTAINED_MIN_LENGTH),
                index.contained_in(query))

    for _, query in warm:
        screen(query)

    with maybe_profile(cfg, "name_similarity"):
        latencies, answers = timed(screen, [query for _, query in queries])

    found: dict[str, list[bool]] = {}
    contained: dict[str, list[bool]] = {}
    for (kind, _), (similar, inside) in zip(queries, answers, strict=True):
        found.setdefault(kind, []).append(bool(similar))
        contained.setdefault(kind, []).append(bool(inside))
    exact_ok = all(answer[0] and answer[0][0].kind == "exact"
                   for (kind, _), answer in zip(queries, answers, strict=True) if kind == "exact")
    check = None if exact_ok and all(found.get("punctuation", [True])) else \
        "an exact copy or a punctuated variant was not found"

    base_lat = baseline_scan(names, [query for _, query in queries[: cfg.screening_baseline]])
    ours = percentiles(latencies)
    return [
        Result(f"name screening, {n:,} closed names: similar+contained_in vs linear scan",
               1 / ours["mean"], "queries/s", 1 / percentiles(base_lat)["mean"],
               f"rapidfuzz process.extract over {n:,} names, {len(base_lat)} queries",
               target_p99=0.005, ours_latency=ours, baseline_latency=percentiles(base_lat),
               check_failed=check,
               notes=f"build {build_s:.1f} s, {memory}; queries with a match "
                     "by similar() / by contained_in(): "
                     + ", ".join(f"{k} {share(v)} / {share(contained[k])}"
                                 for k, v in sorted(found.items()))
                     + " (one substituted character in a name of 6 or fewer scores < 0.85)"),
        Result(f"name index bulk_load, {n:,} names (reference)", n / build_s, "names/s",
               None, "", reference=True, notes=f"{build_s:.1f} s"),
        memory_row(f"name index, {n:,} closed names", grown, memory),
    ]


def baseline_scan(names: list[str], queries: list[str], texts: list[str] | None = None):
    """Per-query latencies of the index-free way: score every name, test every name."""
    norms = [normalise(name) for name in names]
    latencies = []
    for i, query in enumerate(queries):
        t = time.perf_counter()
        process.extract(normalise(query), norms, scorer=fuzz.ratio,
                        score_cutoff=THRESHOLD * 100, limit=10)
        if texts is not None:
            text = normalise(texts[i])
            _ = [norm for norm in norms if norm and norm in text]
        latencies.append(time.perf_counter() - t)
    return latencies


def protected_name_screening(cfg: Config) -> list[Result]:
    n, q = cfg.protected_names, cfg.screening_queries
    log(f"== protected_name_screening: {n:,} protected names, {q:,} profiles")
    maker = NameMaker(seed=2)
    protected = [maker.protected_name() for _ in range(n)]
    index, build_s, grown, memory = build(protected, "protected")

    profiles: list[tuple[str, str, str | None]] = []  # (name, description, embedded)
    for _ in range(q + WARMUP):
        source = maker.rng.choice(protected)
        roll = maker.rng.random()
        if roll < 0.2:
            name = source + maker.rng.choice(SUFFIXES)
        elif roll < 0.35:
            name = maker.variant(source)[1]
        else:
            name = maker.account_name()
        embedded = maker.rng.choice(protected) if maker.rng.random() < 0.33 else None
        profiles.append((name, maker.description(100, embedded), embedded))
    warm, profiles = profiles[:WARMUP], profiles[WARMUP:]

    def screen(profile: tuple[str, str, str | None]):
        name, description, _ = profile
        return (index.similar(name, threshold=THRESHOLD), index.contained_in(name),
                index.contained_in(description))

    for profile in warm:
        screen(profile)
    with maybe_profile(cfg, "protected_name_screening"):
        latencies, answers = timed(screen, profiles)

    embedded_found = [any(m.name == embedded for m in answer[2])
                      for (_, _, embedded), answer in zip(profiles, answers, strict=True)
                      if embedded]
    hits = sum(bool(a[0] or a[1] or a[2]) for a in answers)
    check = None if all(embedded_found) else "a protected name embedded in a description was missed"
    sample = profiles[: cfg.screening_baseline]
    base_lat = baseline_scan(protected, [p[0] for p in sample], [p[1] for p in sample])
    ours = percentiles(latencies)
    return [
        Result(f"protected-name screening, {n:,} names: name + description vs linear scan",
               1 / ours["mean"], "profiles/s", 1 / percentiles(base_lat)["mean"],
               f"rapidfuzz process.extract + substring test of {n:,} names, "
               f"{len(base_lat)} profiles",
               target_p99=0.010, ours_latency=ours, baseline_latency=percentiles(base_lat),
               check_failed=check,
               notes=f"build {build_s:.1f} s, {memory}; {hits:,} of {q:,} "
                     f"profiles had a match; embedded names found {share(embedded_found)}"),
        memory_row(f"name index, {n:,} protected names", grown, memory),
    ]


if __name__ == "__main__":
    # the child side of in_fresh_process: python -m bench.screening NAME CONFIG_JSON
    benchmark, config = sys.argv[1], json.loads(sys.argv[2])
    config["es_threads"] = tuple(config["es_threads"])
    body = {"name_similarity": name_similarity,
            "protected_name_screening": protected_name_screening}[benchmark]
    rows = body(Config(**config))
    print(RESULTS_MARK + json.dumps([dataclasses.asdict(row) for row in rows]), flush=True)
