"""A8.2/A8.3 at platform scale (ADR 0023): the shared index in PostgreSQL (pg_trgm, GIN)
finds what the in-memory index finds, on the real database."""

from __future__ import annotations

import random

import pytest
from sqlalchemy import text

from libs.events import Database
from libs.screening import Affixes, NameIndex
from libs.screening.shared import (
    CONTAINED_SQL,
    DDL,
    SCREEN_SQL,
    TRIGRAM_THRESHOLD,
    SharedContained,
    SharedQuery,
    row_keys,
)

pytestmark = pytest.mark.postgres
TABLE = "screening_names_test"
LENGTHS = f"SELECT DISTINCT length(norm) FROM {TABLE}"
CHARS = ("的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可"
         "主发年动同工也能下过子说产种面而方后多定行学法所民得经十三之进着等部度家电"
         "力里如水化高自二理起小物现实加量都两体制机当使点从业本去把性好应开它合还因"
         "由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正")
SPECIAL = ["人民日报", "中国铁路12306", "Apple", "工商银行", "零食研究所", "阿狸", "北京美食地图"]


@pytest.fixture
async def shared(database_url):
    db = Database(database_url, pool_size=2)
    rng = random.Random(16)
    names = SPECIAL + ["".join(rng.choices(CHARS, k=rng.randint(2, 9))) for _ in range(5000)]
    rows = [(f"n{i}", name, *row_keys(name)) for i, name in enumerate(names)]
    async with db.transaction() as tx:
        for ddl in DDL:
            await tx.execute(text(ddl.format(table=TABLE)))
        await tx.executemany(text(
            f"INSERT INTO {TABLE} (id, name, norm, pinyin, lookalike) "
            "VALUES (:id, :name, :norm, :pinyin, :lookalike)"),
            [dict(zip(("id", "name", "norm", "pinyin", "lookalike"), r, strict=True))
             for r in rows])
    index = NameIndex()
    index.bulk_load((r[0], r[1]) for r in rows)
    yield db, index, names, rng
    await db.dispose()


def ids(matches) -> set[str]:
    return {m.id for m in matches}


async def test_A8_3_shared_index_finds_what_the_in_memory_index_finds(shared):
    db, index, names, rng = shared
    queries = ["人民·日報", "人民日报官方号", "中国铁路l2306", "Аpple", "エ商银行", "阿狸说",
               "关注北京美食地图的朋友", "零食研究"]
    for name in rng.sample(names[len(SPECIAL):], 300):
        roll = rng.random()
        queries.append(name if roll < 0.3
                       else name + rng.choice(("官方", "说", "之")) if roll < 0.6
                       else name[:-1] + rng.choice(CHARS) if roll < 0.8
                       else "".join(rng.choices(CHARS, k=6)))
    async with db.connect() as conn:
        lengths = [r[0] for r in await conn.fetch(text(LENGTHS))]
    found = 0
    for query in queries:
        expected = ids(index.similar(query, limit=None, affixes=Affixes(),
                                     contained_min_length=4))
        sq = SharedQuery(query, limit=None, affixes=Affixes(), contained_min_length=4,
                         lengths=lengths)
        async with db.transaction() as tx:
            await tx.execute(text("SELECT set_config('pg_trgm.similarity_threshold', "
                                  f"'{TRIGRAM_THRESHOLD}', true)"))
            rows = await tx.fetch(text(SCREEN_SQL.format(table=TABLE)), sq.params())
        assert ids(sq.matches(rows)) == expected, query
        found += bool(expected)
    assert found > 150  # the queries do find names: the equality above is not vacuous


async def test_A8_2_shared_index_finds_protected_names_inside_a_text(shared):
    db, index, names, _ = shared
    async with db.connect() as conn:
        lengths = [r[0] for r in await conn.fetch(text(LENGTHS))]
        pinyin_max = await conn.fetchval(text(f"SELECT max(length(pinyin)) FROM {TABLE}"))
        for body in ("欢迎关注！本号转载自《人民·日報》与工商银行", "关注renminribao官方",
                     "".join(names[100:110])):
            sc = SharedContained(body, lengths, pinyin_max)
            rows = await conn.fetch(text(CONTAINED_SQL.format(table=TABLE)), sc.params())
            expected = ids(index.contained_in(body))
            assert expected and ids(sc.matches(rows)) == expected, body
