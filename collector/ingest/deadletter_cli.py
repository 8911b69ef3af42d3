"""``kilnwatch collector deadletter``: read, replay and purge the collector's dead letters.

The store is ``<ledger>.deadletters.sqlite`` (``collector.ingest.deadletters``); these commands open it
beside a running collector (SQLite WAL: the collector keeps writing while they read). Nothing here creates a
store: a collector that never rejected anything has none, and the commands say so.
"""

from __future__ import annotations

import codecs
import sys
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

if TYPE_CHECKING:
    from rich.progress import Progress

    from collector.config import CollectorConfig
    from collector.ingest.deadletters import DeadLetter, DeadLetters
    from collector.service import Collector

deadletter_app = typer.Typer(
    help="Messages the collector rejected: list, show, replay after a fix, purge.", no_args_is_help=True
)

CONFIG_HELP = "Collector TOML config (the store is <ledger>.deadletters.sqlite)."
#: Bytes of a payload ``show`` prints unless told otherwise (``--raw`` writes all of them).
SHOW_BYTES = 4096


def _fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(message, err=True)
    raise typer.Exit(code)


def _config(config: Path) -> CollectorConfig:
    from agent.config_load import ConfigError
    from collector.config import load_config

    try:
        return load_config(config)
    except ConfigError as exc:
        _fail(str(exc))


def _open(cfg: CollectorConfig) -> DeadLetters | None:
    """The store, or None (with a line on standard error) when the collector has not made one yet."""
    from collector.ingest.deadletters import DeadLetters, store_path

    path = store_path(cfg.collector.ledger)
    if not path.exists():
        typer.echo(
            f"no dead letters: {path} does not exist (the collector makes it at its first reject)", err=True
        )
        return None
    return DeadLetters.for_config(cfg)


def _time(ms: int) -> str:
    """A receive time in this machine's time zone, with its offset, to the second."""
    return datetime.fromtimestamp(ms / 1000).astimezone().isoformat(timespec="seconds")


def _before_ms(text: str) -> int:
    try:
        t = datetime.fromisoformat(text.strip())
    except ValueError:
        _fail(
            f"--before {text!r}: give an ISO date or time such as 2026-12-01 or 2026-12-01T08:00 (this"
            " machine's time zone) or one with an offset such as 2026-12-01T08:00+08:00"
        )
    return int((t if t.tzinfo else t.astimezone()).timestamp() * 1000)


def _size(letter: DeadLetter) -> str:
    return f"{letter.size} (kept {letter.kept})" if letter.truncated else str(letter.size)


@deadletter_app.command("list")
def list_letters(
    config: Annotated[Path, typer.Argument(help=CONFIG_HELP)],
    reason: Annotated[
        str | None, typer.Option(help="Only this reason (e.g. not_json, unknown_agent).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="Newest this many.")] = 100,
) -> None:
    """The newest dead letters, newest first, and the store's totals."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    store = _open(_config(config))
    if store is None:
        return
    try:
        letters, stats = store.list(reason, limit), store.stats()
    finally:
        store.close()
    # Nothing is cut short with an ellipsis: topic and detail wrap, the other columns keep their width.
    table = Table()
    table.add_column("id", no_wrap=True)
    table.add_column("received", no_wrap=True, min_width=len("2026-12-01T08:00:00+08:00"))
    table.add_column("topic", overflow="fold")
    table.add_column("reason", no_wrap=True)
    table.add_column("size", no_wrap=True)
    table.add_column("detail", overflow="fold")
    for d in letters:
        # Text, not str: a topic or detail holding [brackets] is not rich markup.
        table.add_row(
            str(d.id), _time(d.received_ms), Text(d.topic), Text(d.reason), _size(d), Text(d.detail)
        )
    console = Console()
    console.print(table)
    evicted = ", ".join(f"{r} {n}" for r, n in stats.evicted_by_reason.items())
    console.print(
        Text(
            f"{len(letters)} shown of {stats.count} kept ({stats.bytes} bytes);"
            f" evicted {stats.evicted}" + (f" ({evicted})" if evicted else "")
        )
    )


@deadletter_app.command("show")
def show(
    config: Annotated[Path, typer.Argument(help=CONFIG_HELP)],
    letter_id: Annotated[int, typer.Argument(metavar="ID", help="The letter's id (from list).")],
    raw: Annotated[
        bool, typer.Option(help="Write the stored payload's bytes to standard output, only.")
    ] = False,
    max_bytes: Annotated[
        int, typer.Option(min=1, help="Payload bytes to print (not with --raw).")
    ] = SHOW_BYTES,
) -> None:
    """One letter: its metadata, and its payload as text if it is UTF-8, as a hex dump otherwise."""
    store = _open(_config(config))
    found = None if store is None else store.get(letter_id)
    if store is not None:
        store.close()
    if found is None:
        _fail(f"no dead letter {letter_id}", 1)
    letter, payload = found
    if raw:
        sys.stdout.buffer.write(payload)
        sys.stdout.buffer.flush()
        return
    kept = f"; {letter.kept} kept (truncated at the byte cap)" if letter.truncated else ""
    for key, value in (
        ("id", letter.id),
        ("received", _time(letter.received_ms)),
        ("topic", letter.topic),
        ("reason", letter.reason),
        ("detail", letter.detail),
        ("size", f"{letter.size} bytes{kept}"),
    ):
        typer.echo(f"{key + ':':10}{value}")
    shown = payload[:max_bytes]
    text = _text(shown, complete=len(shown) == len(payload) and not letter.truncated)
    typer.echo(f"payload ({'UTF-8 text' if text is not None else 'binary, hex'}):")
    typer.echo(text if text is not None else hexdump(shown))
    if len(shown) < len(payload):
        typer.echo(f"… {len(payload) - len(shown)} more bytes (--max-bytes, or --raw for all of them)")


def _text(payload: bytes, complete: bool) -> str | None:
    """The payload as text if it is UTF-8 without control characters (tab and line breaks allowed).

    A cut payload may end inside a character: that tail is left out rather than calling it binary."""
    try:
        text = codecs.getincrementaldecoder("utf-8")().decode(payload, final=complete)
    except UnicodeDecodeError:
        return None
    return text if all(c.isprintable() or c in "\t\r\n" for c in text) else None


def hexdump(data: bytes) -> str:
    """``offset  16 bytes in hex  |printable ASCII|`` lines, as ``hexdump -C`` prints them."""
    lines = []
    for offset in range(0, len(data), 16):
        chunk = data[offset : offset + 16]
        hexes = " ".join(f"{b:02x}" for b in chunk[:8]) + "  " + " ".join(f"{b:02x}" for b in chunk[8:])
        ascii_ = "".join(chr(b) if 0x20 <= b < 0x7F else "." for b in chunk)
        lines.append(f"{offset:08x}  {hexes:<49} |{ascii_}|")
    return "\n".join(lines)


@deadletter_app.command("purge")
def purge(
    config: Annotated[Path, typer.Argument(help=CONFIG_HELP)],
    reason: Annotated[str | None, typer.Option(help="Only letters of this reason.")] = None,
    before: Annotated[
        str | None,
        typer.Option(help="Only letters received before this ISO time (local, or with an offset)."),
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask.")] = False,
) -> None:
    """Delete letters (all of them, of a reason, received before a time); asks first unless --yes."""
    before_ms = None if before is None else _before_ms(before)
    store = _open(_config(config))
    if store is None:
        return
    try:
        n = store.count(reason, before_ms)
        if n == 0:
            typer.echo("nothing to purge")
            return
        if not yes:
            typer.confirm(f"purge {n} dead letter(s) from {store.path}?", abort=True)
        typer.echo(f"purged {store.purge(reason, before_ms)}")
    finally:
        store.close()


@deadletter_app.command("replay")
def replay(
    config: Annotated[Path, typer.Argument(help=CONFIG_HELP)],
    ids: Annotated[list[int] | None, typer.Argument(metavar="[ID]...", help="Letters to replay.")] = None,
    reason: Annotated[str | None, typer.Option(help="Replay every letter of this reason.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Replay every letter.")] = False,
) -> None:
    """Run letters through the collector's ingest again, after a fix (the site model now names the agent).

    Applied or duplicate letters leave the store; one rejected again stays, once. Exits 1 if any were
    rejected again or are truncated (a prefix cannot be replayed).
    """
    from rich.console import Console
    from rich.progress import Progress

    from agent import logs
    from agent.config_load import ConfigError
    from collector.sites import load_sites

    if sum((bool(ids), reason is not None, all_)) != 1:
        _fail("replay: name the letters: IDs, --reason R or --all (one of them)")
    cfg = _config(config)
    store = _open(cfg)
    if store is None:
        return
    try:
        chosen = sorted(set(ids)) if ids else list(store.ids(reason))
        known = set(store.ids())
        missing = [i for i in chosen if i not in known]
        if missing:
            _fail(f"no dead letter {', '.join(map(str, missing))}: nothing replayed")
        if not chosen:
            typer.echo("nothing to replay")
            return
        try:
            sites = load_sites(cfg.collector.site_model)
        except ConfigError as exc:
            _fail(str(exc))
        from collector.service import Collector  # numba and the ledger: only once there is work

        logs.configure(cfg.collector.log_level)  # the collector's own lines go to standard error, as in run
        outcomes = _replay(
            store, Collector(cfg, sites, connect=False), chosen, Progress(console=Console(stderr=True))
        )
    finally:
        store.close()
    typer.echo(f"replayed {len(chosen)}: " + ", ".join(f"{k} {n}" for k, n in sorted(outcomes.items())))
    if any(k.startswith("rejected") or k == "truncated" for k in outcomes):
        raise typer.Exit(1)


def _replay(store: DeadLetters, collector: Collector, ids: list[int], progress: Progress) -> Counter[str]:
    """Replay ``ids`` oldest first; each one that applies (or was applied before) is removed at once, so an
    interrupted replay leaves exactly the letters still to do."""
    outcomes: Counter[str] = Counter()
    try:
        with progress:
            task = progress.add_task("replaying", total=len(ids))
            for letter_id in ids:
                found = store.get(letter_id)
                if found is None:  # removed meanwhile (a purge, or another replay)
                    outcomes["gone"] += 1
                elif found[0].truncated:
                    outcomes["truncated"] += 1
                else:
                    letter, payload = found
                    result = collector.replay(letter.topic, payload)
                    outcomes[result] += 1
                    if result in ("applied", "duplicate"):
                        store.remove([letter_id])
                progress.advance(task)
    finally:
        collector.close()
    return outcomes
