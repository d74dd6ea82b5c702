"""The leak scan (DESIGN: personal data never in clear in events, masked in logs and exports).

Natural persons with distinctive identity numbers, phones and legal names register through
the API and are verified by the real verification service (the local identity provider)
until registration shows them active; one of them is applied for as a transferee, and a
member of the public files a complaint with a phone as contact. Then every place the
system leaves data is scanned for any of those values in clear:

- every text, varchar, json, jsonb and bytea column of every table of the five services'
  databases (events, outbox state, inboxes, projections, read models);
- every topic of this run's Kafka namespace, from the beginning (keys, values, headers);
- everything the services printed (the log the ``system`` fixture collects);
- every span the services exported (the OTLP receiver of ``test_tracing``, raw requests);
- every API response this test got.

"Name" here is a natural person's legal name (``identity.name``, PII); an account's
display name (``profile.name``) is public and may appear anywhere.
"""

from __future__ import annotations

import json
import os
import uuid
from collections import Counter
from dataclasses import dataclass, field

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from libs.events.topics import SERVICES
from libs.runtime.pii import Sealer, mask_id_number
from libs.runtime.settings import DEV_PII_KEY
from tests.conftest import PG_PORT, eventually
from tests.e2e.test_tracing import RAW, SPANS  # starts the OTLP receiver before the system
from tests.registration_support import phone as new_phone
from tests.registration_support import resident_id

pytestmark = pytest.mark.kafka

# Rare characters, so that a legal name cannot appear by chance (a masked name keeps only
# the first character: "欧***").
_RARE = "翀翊珩琰璟瑾玥珏琛玮昶旻"


def legal_name() -> str:
    n = uuid.uuid4().int
    return "欧阳" + "".join(_RARE[(n >> (4 * i)) % len(_RARE)] for i in range(3))


@dataclass
class Person:
    """A natural person's personal data, as the test gives it to the API."""

    role: str
    id_number: str = field(default_factory=resident_id)
    phone: str = field(default_factory=new_phone)
    name: str = field(default_factory=legal_name)
    contact: str = field(default_factory=new_phone)  # the contact phone given with the account

    def values(self) -> dict[str, str]:
        return {f"{self.role}.id_number": self.id_number, f"{self.role}.phone": self.phone,
                f"{self.role}.name": self.name, f"{self.role}.contact": self.contact}


def forms(value: str) -> list[str]:
    """The ways a value may be written down: as is, JSON-escaped (``\\u6b27...``)."""
    escaped = json.dumps(value)[1:-1]
    return list(dict.fromkeys([value, escaped]))


class Scan:
    """Looks for ``values`` (leaks) and for ``controls``: what must be there, in masked or
    blind form, to show that the scan reads the places the data went."""

    def __init__(self, values: dict[str, str], controls: list[str]) -> None:
        self.values = values
        self.controls = controls
        self.found: list[str] = []
        self.controlled: set[str] = set()  # the channels (database, kafka) a control was in
        self.scanned: Counter[str] = Counter()  # items read per channel

    def channel(self, where: str) -> str:
        first, rest = where.split(" ", 1)
        return rest.split(" ", 1)[0] if first in SERVICES else first

    def text(self, where: str, text: str) -> None:
        low = text.lower()
        self.scanned[self.channel(where)] += 1
        if any(c.lower() in low for c in self.controls):
            self.controlled.add(self.channel(where))
        for what, value in self.values.items():
            if any(f.lower() in low for f in forms(value)):
                self.found.append(f"{what} in {where}")

    def data(self, where: str, data: bytes | None) -> None:
        if not data:
            return
        low = data.lower()
        self.scanned[self.channel(where)] += 1
        if any(c.lower().encode() in low for c in self.controls):
            self.controlled.add(self.channel(where))
        for what, value in self.values.items():
            if any(f.lower().encode() in low for f in forms(value)) or (
                    value.encode().hex() in data.hex()):
                self.found.append(f"{what} in {where}")


class Recorder:
    """Every response the test got, for the scan."""

    def __init__(self, system) -> None:
        self.system = system
        self.responses: list[tuple[str, str]] = []

    async def call(self, service: str, method: str, path: str, *roles: str,
                   expect: int = 200, **kw):
        async with self.system.client(service, *roles) as http:
            r = await http.request(method, path, **kw)
        self.responses.append((f"{method} {service}{path} -> {r.status_code}", r.text))
        assert r.status_code == expect, r.text
        return r.json()


def registration(person: Person) -> dict:
    tag = uuid.uuid4().hex[:6]
    return {
        "entity_type": "natural_person",
        "identity": {"id_number": person.id_number, "name": person.name,
                     "phone": person.phone},
        "profile": {"name": f"科技小站{tag}", "description": "分享日常的科技见闻",
                    "avatar": {"url": "https://cdn.example.com/a.png", "sha256": "ab" * 32}},
        "category": "technology", "province": "440000", "operations_province": "440000",
        "contact": person.contact, "agreement_version": "2025-01",
        "device_fingerprint": uuid.uuid4().hex,
        "network": f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.1",
    }


def key() -> dict:
    return {"Idempotency-Key": uuid.uuid4().hex}


async def active(api: Recorder, person: Person) -> str:
    """Registered and verified for real (no verification event published by the test)."""
    out = await api.call("registration", "POST", "/v1/accounts", "platform", expect=202,
                         json=registration(person), headers=key())
    account_id = out["account_id"]
    seen: dict = {}

    async def is_active() -> bool:
        async with api.system.client("registration", "platform") as http:
            r = await http.get(f"/v1/accounts/{account_id}")
        seen["v"] = r.json()
        return r.status_code == 200 and seen["v"].get("status") == "active"

    await eventually(is_active, timeout=60, what=f"{account_id} active (last {seen})")
    return account_id


async def scan_databases(system, scan: Scan) -> dict[str, int]:
    """Every text-like column of every table of every service's database; the number of
    events each service stored (the Kafka scan waits for as many)."""
    kinds = ("text", "character varying", "character", "json", "jsonb", "bytea")
    events: dict[str, int] = {}
    for service, db in system.databases.items():
        conn = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{PG_PORT}/{db}")
        try:
            columns = await conn.fetch(
                "SELECT table_schema, table_name, column_name FROM information_schema.columns"
                " WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
                " AND data_type = ANY($1::text[])", list(kinds))
            assert columns, f"{service}: no columns to scan in {db}"
            for schema, table, column in columns:
                rows = await conn.fetch(
                    f'SELECT "{column}"::text AS v FROM "{schema}"."{table}"'
                    f' WHERE "{column}" IS NOT NULL')
                for row in rows:
                    scan.text(f"{service} database {table}.{column}", row["v"])
            events[service] = await conn.fetchval("SELECT count(*) FROM events")
        finally:
            await conn.close()
    return events


async def scan_kafka(system, scan: Scan, stored: dict[str, int]) -> None:
    """Every topic of the run's namespace from the beginning; each service's topic once it
    holds at least as many events as the service stored (the relay has caught up)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=system.bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        topics = sorted(t for t in await consumer.topics() if t.startswith(system.namespace))
        assert {system.topic(s) for s in stored} <= set(topics), topics
        consumer.subscribe(topics=topics)  # only to learn their partitions (metadata)

        async def known() -> bool:
            return all(consumer.partitions_for_topic(t) for t in topics)

        await eventually(known, timeout=30, what=f"the partitions of {topics}")
        parts = [TopicPartition(t, p) for t in topics for p in consumer.partitions_for_topic(t)]
        consumer.unsubscribe()

        seen: dict = {}

        async def relayed() -> bool:
            ends = await consumer.end_offsets(parts)
            seen.update({s: sum(n for tp, n in ends.items() if tp.topic == system.topic(s))
                         for s in stored})
            return all(seen[s] >= want for s, want in stored.items())

        await eventually(relayed, timeout=60,
                         what=f"every stored event on Kafka (stored {stored}, on Kafka {seen})")
        ends = await consumer.end_offsets(parts)
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        remaining = {tp for tp in parts if ends[tp] > 0}
        read = 0

        async def drained() -> bool:
            nonlocal read
            batch = await consumer.getmany(timeout_ms=500, max_records=2000)
            for tp, records in batch.items():
                for r in records:
                    read += 1
                    where = f"kafka {tp.topic}[{tp.partition}]@{r.offset}"
                    scan.data(where + " key", r.key)
                    scan.data(where + " value", r.value)
                    for name, value in r.headers or ():
                        scan.data(f"{where} header {name}", value)
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
            return not remaining

        await eventually(drained, timeout=120, what="every topic read to its end")
        assert read >= sum(stored.values())
    finally:
        await consumer.stop()


async def test_no_clear_personal_data_in_tables_topics_logs_spans_or_responses(system):
    api = Recorder(system)
    owners = [Person(f"owner{i}") for i in range(3)]
    transferee, complainant = Person("transferee"), Person("complainant")
    accounts = [await active(api, p) for p in owners]

    # the first account applied for to a natural-person transferee (verified by the real
    # verification service, which opens the transferee's sealed identity)
    transfer = await api.call("transfer", "POST", "/v1/transfers", "platform", expect=201,
                              headers=key(), json={
                                  "account_id": accounts[0], "contact": transferee.contact,
                                  "transferee": {"id_number": transferee.id_number,
                                                 "name": transferee.name,
                                                 "phone": transferee.phone}})
    seen: dict = {}

    async def checked() -> bool:
        async with system.client("transfer", "operator") as http:
            r = await http.get(f"/v1/transfers/{transfer['transfer_id']}")
        seen["v"] = r.json()
        return seen["v"].get("status") != "verifying"

    await eventually(checked, timeout=60, what=f"the transferee checked ({seen})")
    # a member of the public complains about the second account, leaving a phone
    case = await api.call("enforcement", "POST", "/v1/complaints", expect=201, headers=key(),
                          json={"account_id": accounts[1], "reason": "冒充官方发布消息",
                                "contact": complainant.phone})

    # what the API shows of them (every response is scanned)
    for account_id in accounts:
        await api.call("registration", "GET", f"/v1/accounts/{account_id}", "platform")
        await api.call("registration", "GET", f"/v1/accounts/{account_id}/history", "operator")
        await api.call("verification", "GET", f"/v1/accounts/{account_id}/verification",
                       "reviewer")
        await api.call("verification", "GET", f"/v1/public/accounts/{account_id}")
        await api.call("credit", "GET", f"/v1/accounts/{account_id}/credit", "operator")
        await api.call("transfer", "GET", f"/v1/accounts/{account_id}/operators", "platform")
    await api.call("transfer", "GET", f"/v1/transfers/{transfer['transfer_id']}", "operator")
    await api.call("enforcement", "GET", f"/v1/cases/{case['case_id']}", "operator")
    # a look-up by identity goes in a body; one sent in a URL is refused, and neither may
    # leave the number in a span, a log line or an answer
    await api.call("registration", "POST", "/v1/accounts/search", "operator",
                   json={"owner": owners[0].id_number})
    await api.call("registration", "GET", "/v1/accounts", "operator", expect=422,
                   params={"owner": owners[0].id_number})

    values = {k: v for p in (*owners, transferee, complainant) for k, v in p.values().items()
              if not (p is complainant and k != "complainant.phone")}
    sealer = Sealer(DEV_PII_KEY)  # the services' development key: their blind indexes
    scan = Scan(values, [sealer.blind("id_number", p.id_number) for p in owners]
                + [mask_id_number(p.id_number) for p in owners])
    stored = await scan_databases(system, scan)
    await scan_kafka(system, scan, stored)

    if os.environ.get("E2E_OTLP_RECEIVER"):  # the spans come to this process
        async def exported() -> bool:
            return {"registration", "verification", "transfer", "enforcement"} <= {
                s["service"] for s in SPANS}

        await eventually(exported, timeout=30, what="spans of the services")
        for i, raw in enumerate(list(RAW)):
            scan.data(f"span export #{i}", raw)
    for i, line in enumerate(system.log):
        scan.text(f"log line {i}: {line[:120]!r}", line)
    for where, body in api.responses:
        scan.text(f"response {where}", body)

    assert api.responses and system.log
    assert {"database", "kafka"} <= scan.controlled, scan.controlled
    print(f"leak scan: {dict(scan.scanned)} items read, {len(values)} values looked for")
    assert not scan.found, "personal data in clear:\n" + "\n".join(scan.found)
