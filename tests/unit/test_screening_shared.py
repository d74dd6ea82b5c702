"""libs.screening.shared scores the rows a table returns exactly as NameIndex scores its own
candidates (ADR 0023): with every row given, the answers are the same."""

from __future__ import annotations

import random

import pytest

from libs.screening import Affixes, NameIndex
from libs.screening.shared import SharedContained, SharedQuery, row_keys

NAMES = ["人民日报", "中华人民共和国外交部", "Apple", "中国铁路12306", "黎明", "CCTV新闻", "阿狸",
         "工商银行", "零食研究所", "北京美食地图", "renminribao", "人民日報"]
QUERIES = ["人民日报", "人民·日報", "人民日宝", "Аpple", "中国铁路l2306", "人民日报官方号",
           "阿狸说", "エ商银行", "关注北京美食地图的朋友", "人民日宝官方", "零食研究", "无关的名字",
           "黎明官方"]


@pytest.fixture(scope="module")
def table():
    rng = random.Random(3)
    chars = ("的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主"
             "发年动同工也能下过子说产种面而方后多定行学法所民得经")
    extra = ["".join(rng.choices(chars, k=rng.randint(2, 8))) for _ in range(2000)]
    names = NAMES + extra
    index = NameIndex()
    index.bulk_load((f"n{i}", name) for i, name in enumerate(names))
    rows = [(f"n{i}", name, *row_keys(name)) for i, name in enumerate(names)]
    lengths = sorted({len(r[2]) for r in rows})
    return index, rows, lengths, extra


def ids(matches) -> list[tuple[str, str, float]]:
    return sorted((m.id, m.kind, round(m.score, 6)) for m in matches)


@pytest.mark.parametrize("query", QUERIES)
def test_shared_similar_scores_like_the_index(table, query):
    index, rows, lengths, _ = table
    kwargs = {"threshold": 0.85, "limit": None, "affixes": Affixes(),
              "contained_min_length": 4}
    shared = SharedQuery(query, lengths=lengths, **kwargs)
    assert ids(shared.matches(rows)) == ids(index.similar(query, **kwargs))


def test_shared_similar_on_generated_names(table):
    index, rows, lengths, extra = table
    rng = random.Random(4)
    for name in rng.sample(extra, 200):
        query = name + rng.choice(("", "官方", "说", "的")) if rng.random() < 0.5 else \
            name[:-1] + "人"
        shared = SharedQuery(query, limit=None, affixes=Affixes(), contained_min_length=4,
                             lengths=lengths)
        expected = index.similar(query, limit=None, affixes=Affixes(), contained_min_length=4)
        assert ids(shared.matches(rows)) == ids(expected), query


@pytest.mark.parametrize("text", ["欢迎关注！本号转载自《人民·日報》与 CCTV 新闻", "今天黎明来了",
                                  "关注renminribao官方", "人民日宝官方"])
def test_shared_contained_scores_like_the_index(table, text):
    index, rows, lengths, _ = table
    pinyin_max = max(len(r[3]) for r in rows)
    shared = SharedContained(text, lengths, pinyin_max)
    assert ids(shared.matches(rows)) == ids(index.contained_in(text))
