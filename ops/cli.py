"""``acctctl``: the Typer application (``acctctl --help``; ``python -m ops``)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.table import Table

from libs.events.topics import SERVICES

from . import EXIT_CHECK_FAILED, EXIT_ERROR, OpsError, dlq, lag, replay, streams, verify
from .output import console, emit, err, progress, short
from .runtime import bootstrap, check_service, operator_name, principal

HELP = """Operations tool of the public-accounts platform.

Reads each service's database and Kafka with the settings `make run` uses
(<SERVICE>_DATABASE_URL, KAFKA_BOOTSTRAP_SERVERS, KAFKA_NAMESPACE, AUTH_SECRET, PII_KEY).

Exit codes: 0 ok, 1 error, 2 usage (or refused), 3 not found, 4 check failed."""

app = typer.Typer(help=HELP, no_args_is_help=True, add_completion=False,
                  context_settings={"help_option_names": ["-h", "--help"]})
streams_app = typer.Typer(help="An account's events across the services.", no_args_is_help=True)
dlq_app = typer.Typer(help="Dead letters of a service's consumers.", no_args_is_help=True)
app.add_typer(streams_app, name="streams")
app.add_typer(dlq_app, name="dlq")

Json = Annotated[bool, typer.Option("--json", help="machine-readable JSON on stdout")]
Service = Annotated[str, typer.Option("--service", "-s", help=f"one of: {', '.join(SERVICES)}")]
Services = Annotated[list[str] | None, typer.Option(
    "--service", "-s", help="limit to these services (repeatable; default: all five)")]
Token = Annotated[str | None, typer.Option(
    "--token", envvar="ACCTCTL_TOKEN", help="operator's bearer token (AUTH_SECRET-signed)")]
Reason = Annotated[str, typer.Option("--reason", help="why: recorded with the action")]


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    try:
        return asyncio.run(coro)
    except OpsError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(exc.exit_code) from None
    except Exception as exc:  # noqa: BLE001 - one line, exit 1
        err.print(f"[red]error:[/red] {type(exc).__name__}: {exc}", highlight=False)
        raise typer.Exit(EXIT_ERROR) from None


def _services(chosen: list[str] | None) -> list[str]:
    names = chosen or list(SERVICES)
    try:
        return [check_service(n) for n in names]
    except OpsError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(exc.exit_code) from None


def _time(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(f"not an ISO 8601 time: {value!r}") from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _operator(service: str, token: str | None) -> str:
    rt = bootstrap(service)
    try:
        return operator_name(principal(rt, token))
    except OpsError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(exc.exit_code) from None


# -- streams / state -------------------------------------------------------------------
@streams_app.command("show")
def streams_show(
    account_id: Annotated[str, typer.Argument(help="the account id")],
    service: Services = None,
    reveal: Annotated[bool, typer.Option(help="open sealed personal data (operator role)")
                      ] = False,
    reason: Reason = "",
    token: Token = None,
    as_of: Annotated[str | None, typer.Option(help="only events at or before (ISO 8601)")
                     ] = None,
    page_size: Annotated[int, typer.Option(min=1, help="events per read of a service's log")
                         ] = streams.PAGE,
    json: Json = False,
) -> None:
    """The account's events in every service, in causal order, payloads decoded; each
    service's log is read in pages of --page-size events.

    Personal data (fields ending _sealed) stays sealed unless --reveal is given with an
    operator token and a --reason; each reveal is recorded in the ops stream."""
    rows = run(streams.show(account_id, services=_services(service), reveal=reveal,
                            token=token, reason=reason, as_of=_time(as_of),
                            page_size=page_size))

    def render(rows):
        t = Table(title=f"account {account_id}: {len(rows)} events")
        for col in ("time", "service", "stream@version", "type", "data"):
            t.add_column(col, overflow="fold")
        for r in rows:
            t.add_row(r["time"], r["service"], f"{r['stream_id']}@{r['stream_version']}",
                      r["type"], short(r["data"], 160))
        console.print(t)

    emit(rows, json, render)


@app.command("state")
def state_cmd(
    account_id: Annotated[str, typer.Argument(help="the account id")],
    as_of: Annotated[str | None, typer.Option(
        "--as-of", help="ISO 8601 time (default: now); a time without zone is UTC")] = None,
    service: Services = None,
    json: Json = False,
) -> None:
    """The account's read models in each service as they were at --as-of, folded from the
    log with each projection's own evolve (personal data stays sealed)."""
    out = run(streams.state(account_id, services=_services(service), as_of=_time(as_of)))

    def render(out):
        console.print(f"[bold]account {account_id}[/bold] as of {out['as_of']}")
        for svc, s in out["services"].items():
            last = s["last_event"]
            console.print(f"[cyan]{svc}[/cyan]: {s['events']} events"
                          + (f", last {last['type']} at {last['time']}" if last else ""))
            for name, docs in s["projections"].items():
                for key, doc in docs.items():
                    console.print(f"  {name}[{key}]: {short(doc, 300)}", highlight=False)

    emit(out, json, render)


# -- replay ----------------------------------------------------------------------------
@app.command("replay")
def replay_cmd(
    service: Service,
    projection: Annotated[str, typer.Option("--projection", "-p", help="projection name")],
    from_: Annotated[str | None, typer.Option(
        "--from", help="resume the shadow from this log cursor (xid:position) keeping its "
                       "documents; default: rebuild from the start")] = None,
    swap: Annotated[bool, typer.Option(help="swap the shadow in; the old copy is kept")
                    ] = False,
    drop_old: Annotated[bool, typer.Option(
        "--drop-old", help="drop the kept old copy (alone: only that; with --swap: after)")
                        ] = False,
    sample: Annotated[int, typer.Option(help="differing documents to show")] = 10,
    token: Token = None,
    json: Json = False,
) -> None:
    """Rebuild a projection into a shadow while the service runs, compare it with the live
    one (counts, content hash, differing documents), and swap it in atomically on request.

    Exit 4 when the shadow differs from the live projection and --swap was not given."""
    check_service(service)
    who = _operator(service, token)

    with progress(f"replay {service}/{projection}", None, enabled=not json) as advance:
        out = run(replay.run(service, projection, start=from_, swap=swap, drop_old=drop_old,
                             sample=sample, operator=who,
                             progress=lambda total: advance))

    def render(out):
        if "comparison" not in out:
            console.print(f"dropped {out.get('dropped_old', 0)} old documents")
            return
        c = out["comparison"]
        t = Table(title=f"{service}/{projection}: shadow vs live at {c['checkpoint']}")
        t.add_column("")
        t.add_column("live")
        t.add_column("shadow")
        t.add_row("documents", str(c["live_documents"]), str(c["shadow_documents"]))
        t.add_row("content hash", c["live_hash"][:16], c["shadow_hash"][:16])
        console.print(f"{out['events_read']} events folded into the shadow")
        console.print(t)
        console.print("[green]identical[/green]" if c["identical"] else
                      f"[yellow]{len(c['differences'])} differing documents (sample):[/yellow]")
        for d in c["differences"]:
            console.print(f"  {d['key']}: live={short(d['live'])} shadow={short(d['shadow'])}",
                          highlight=False)
        if "swapped" in out:
            s = out["swapped"]
            console.print(f"swapped at {s['checkpoint']}: {s['documents']} documents; "
                          f"old copy kept as {s['old']}")
        if "dropped_old" in out:
            console.print(f"dropped {out['dropped_old']} old documents")

    emit(out, json, render)
    if "comparison" in out and not out["comparison"]["identical"] and not swap:
        raise typer.Exit(EXIT_CHECK_FAILED)


# -- dead letters ----------------------------------------------------------------------
@dlq_app.command("list")
def dlq_list(service: Service,
             consumer: Annotated[str | None, typer.Option(help="one consumer")] = None,
             all_: Annotated[bool, typer.Option("--all", help="resolved ones too")] = False,
             json: Json = False) -> None:
    """Dead letters (pending by default) with their errors."""
    rows = run(dlq.list_letters(service, consumer, all_=all_))

    def render(rows):
        t = Table(title=f"{service}: {len(rows)} dead letters")
        for col in ("id", "consumer", "event_type", "topic/partition@offset", "attempts",
                    "status", "error"):
            t.add_column(col, overflow="fold")
        for r in rows:
            t.add_row(str(r["id"]), r["consumer"], str(r["event_type"]),
                      f"{r['topic']}/{r['partition']}@{r['offset']}", str(r["attempts"]),
                      r["status"], short(r["error"], 120))
        console.print(t)

    emit(rows, json, render)


@dlq_app.command("show")
def dlq_show(service: Service, letter_id: Annotated[int, typer.Argument(help="dead letter id")],
             json: Json = False) -> None:
    """One dead letter: its error and its event, decoded (personal data sealed)."""
    out = run(dlq.show(service, letter_id))
    emit(out, json, lambda o: console.print_json(data=o, default=str))


@dlq_app.command("retry")
def dlq_retry(service: Service, letter_id: Annotated[int, typer.Argument(help="dead letter id")],
              only: Annotated[bool, typer.Option(
                  "--only", help="this dead letter alone, not the account's other ones")
                              ] = False,
              reason: Reason = "", token: Token = None, json: Json = False) -> None:
    """Hand the dead letter back to its consumer's handler (kernel redrive) and, unless
    --only, every pending dead letter of the same account, in stream order; stops at the
    first that fails again (exit 4). Each attempt is recorded in the ops stream."""
    who = _operator(service, token)
    rows = run(dlq.retry(service, letter_id, operator=who, reason=reason,
                         whole_account=not only))

    def render(rows):
        for r in rows:
            console.print(f"{r['id']} {r['event_type']} v{r['stream_version']}: "
                          + ("[green]handled[/green]" if r["succeeded"] else r["error"]))

    emit(rows, json, render)


@dlq_app.command("skip")
def dlq_skip(service: Service, letter_id: Annotated[int, typer.Argument(help="dead letter id")],
             reason: Annotated[str, typer.Option("--reason", help="why (required, recorded)")],
             token: Token = None, json: Json = False) -> None:
    """Set a dead letter aside without handling it; the reason is recorded."""
    who = _operator(service, token)
    out = run(dlq.skip(service, letter_id, operator=who, reason=reason))
    emit(out, json, lambda o: console.print(f"dead letter {o['id']} skipped: {o['reason']}"))


# -- lag / verify-log ------------------------------------------------------------------
@app.command("lag")
def lag_cmd(service: Services = None,
            kafka: Annotated[bool, typer.Option(help="consumer lag from the broker")] = True,
            json: Json = False) -> None:
    """Relay backlog (unpublished events, age of the oldest) and consumer lag per topic and
    partition, for each service."""
    out = run(lag.lag(_services(service), kafka=kafka))

    def render(out):
        t = Table(title="relay backlog")
        for col in ("service", "topic", "checkpoint", "unpublished", "oldest age (s)"):
            t.add_column(col)
        for svc, e in out.items():
            r = e["relay"]
            t.add_row(svc, r["topic"], r["checkpoint"], str(r["unpublished"]),
                      str(r["oldest_age_seconds"]))
        console.print(t)
        c = Table(title="consumer lag")
        for col in ("service", "consumer", "topic", "partition", "end", "committed", "lag"):
            c.add_column(col)
        for svc, e in out.items():
            for r in e.get("consumers", []):
                c.add_row(svc, r["consumer"], r["topic"], str(r["partition"]),
                          str(r["end_offset"]), str(r["committed"]), str(r["lag"]))
            if "consumers_error" in e:
                c.add_row(svc, "-", "-", "-", "-", "-", e["consumers_error"])
        console.print(c)

    emit(out, json, render)


@app.command("verify-log")
def verify_cmd(service: Service,
               kafka: Annotated[bool, typer.Option(
                   help="also check the relay's topic and the consumers' inboxes")] = False,
               json: Json = False) -> None:
    """Prove that no checkpoint (relay, projections; consumers with --kafka) skipped a
    position of the service's global log; report gaps with the transactions behind them.
    Exit 4 when a check fails."""
    out = run(verify.verify(service, kafka=kafka))

    def render(o):
        console.print(f"{service}: {o['events']} events, positions {o['first_position']}.."
                      f"{o['last_position']}, {len(o['gaps'])} gaps"
                      + (f" (first: {o['gaps'][:5]})" if o["gaps"] else ""))
        for t in o["open_transactions"]:
            console.print(f"  open transaction pid {t['pid']} xid {t['xid']} since "
                          f"{t['started']}: {short(t['query'], 80)}", highlight=False)
        for c in o["checkpoints"]:
            mark = "[green]ok[/green]" if c["ok"] else "[red]SKIPS[/red]"
            console.print(f"  checkpoint {c['name']} at {c['cursor']}: {mark}")
        for p in o["projections"]:
            mark = "[green]ok[/green]" if p["ok"] else "[red]DIFFERS[/red]"
            console.print(f"  projection {p['projection']} at {p['checkpoint']}: {mark}")
        if "relay" in o:
            r = o["relay"]
            console.print(f"  relay {r['topic']}: {r['passed']} passed, "
                          f"{len(r['missing_on_topic'])} missing on the topic")
            for c in o["consumers"]:
                console.print(f"  consumer {c['consumer']}: {c['checked']} checked, "
                              f"{len(c['missing'])} missing")
        console.print("[green]no position skipped[/green]" if o["ok"] else "[red]FAILED[/red]")

    emit(out, json, render)
    if not out["ok"]:
        raise typer.Exit(EXIT_CHECK_FAILED)


def main() -> None:
    app()
