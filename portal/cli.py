"""`klupa portal`: serve the portal, manage its tokens and polls.

Every command is a thin layer over a function (portal.server.serve, portal.tokens.*,
portal.store.create_poll) that tests and the demo call directly.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from klupa.console import Parser
from portal import checks, i18n, registry, store
from portal.db import DatabaseError, open_database
from portal.server import ServeError
from portal.tokens import TokenError, create_token, list_tokens, revoke_token, rotate_token

DB_ENV = "KLUPA_PORTAL_DB"
MUNICIPALITY_HELP = "municipality id, e.g. mostar"
# The languages a poll may have besides Bosnian (required).
OTHER_LANGUAGES = ("hr", "sr", "en")


class UsageError(ValueError):
    pass


def _add_db(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        default=os.environ.get(DB_ENV),
        help=f"SQLite file path or database URL (postgresql://…); default ${DB_ENV}",
    )


def _db(args: argparse.Namespace) -> str:
    if not args.db:
        raise UsageError(f"--db is required (or set {DB_ENV})")
    return str(args.db)


def parse_time(value: str) -> int:
    """Unix seconds, or an ISO 8601 date/time (without a zone: Sarajevo local time)."""
    if value.lstrip("-").isdigit():
        return int(value)
    try:
        t = datetime.datetime.fromisoformat(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{value!r} is neither Unix seconds nor ISO 8601") from exc
    if t.tzinfo is None:
        t = _sarajevo(t, value)
    return int(t.timestamp())


def _sarajevo(t: datetime.datetime, value: str) -> datetime.datetime:
    """`t` as Sarajevo wall time; a time the clock change skips or repeats names no single
    moment, so it is refused (with an offset given, it is one)."""
    first, second = t.replace(tzinfo=store.LOCAL), t.replace(tzinfo=store.LOCAL, fold=1)
    if first.utcoffset() == second.utcoffset():
        return first
    if first.astimezone(datetime.UTC).astimezone(store.LOCAL).replace(tzinfo=None) != t:
        raise argparse.ArgumentTypeError(
            f"{value!r} does not exist in Sarajevo time (the clocks go forward over it)"
        )
    offsets = " or ".join(x.isoformat()[-6:] for x in (first, second))
    raise argparse.ArgumentTypeError(
        f"{value!r} happens twice in Sarajevo time, give its offset: {offsets}"
    )


def _port(value: str) -> int:
    """A TCP port to listen on: 0 (one the system picks) to 65535."""
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port: give 0 to 65535")
    return port


def _pair(value: str) -> tuple[str, str]:
    key, sep, text = value.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"{value!r}: expected ID=LABEL")
    return key.strip(), text.strip()


def _triple(value: str) -> tuple[str, str, str]:
    lang, sep, rest = value.partition(":")
    if not sep:
        raise argparse.ArgumentTypeError(f"{value!r}: expected LANG:ID=LABEL")
    key, text = _pair(rest)
    return lang.strip(), key, text


Arg = tuple[tuple[str, ...], dict[str, Any]]


def _arg(*flags: str, **options: Any) -> Arg:
    """One `add_argument(*flags, **options)`, as data."""
    return flags, options


def _switch(flag: str, help: str) -> Arg:
    return _arg(flag, action="store_true", help=help)


def _repeated(flag: str, parse: Callable[[str], Any], metavar: str, help: str) -> Arg:
    """An option given once per item, collected in a list."""
    return _arg(flag, type=parse, action="append", default=[], metavar=metavar, help=help)


@dataclass(frozen=True)
class Command:
    """A command on the database: `--db` first, then `args`. An `epilog` is an example laid out
    by hand, so the description and the epilog are shown as written."""

    help: str
    description: str | None = None
    args: tuple[Arg, ...] = ()
    epilog: str | None = None


@dataclass(frozen=True)
class Actions:
    """A command whose ACTION names what it does (`token create`, `bench list`, ...)."""

    help: str
    actions: dict[str, Command]


def commands() -> dict[str, Command | Actions]:
    """Every command: its line in the parent's `--help`, its own description and arguments.

    Made anew for each parser, so that no two parsers share a default list (`--option`, ...)."""
    return {
        "serve": _serve_parsers(),
        "migrate": Command("bring the database schema to the newest revision"),
        "token": _token_parsers(),
        "bench": _bench_parsers(),
        "poll": _poll_parsers(),
    }


def _serve_parsers() -> Command:
    return Command(
        "serve the API and pages (migrates the database first)",
        "Serve the portal until SIGINT or SIGTERM (then exit 0). Logs are JSON lines on stderr. "
        "The database schema is migrated to the newest revision first.",
        (
            _arg("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"),
            _arg("--port", type=_port, default=8080, help="port, 0 to 65535 (default 8080)"),
            _arg(
                "--alerts",
                help="a TOML file with an [alerts] table: send 'gateway down' alerts (e-mail, "
                "webhook)",
            ),
        ),
    )


def _token_parsers() -> Actions:
    token_id = _arg("id", type=int)
    return Actions(
        "API tokens: create, list, revoke, rotate",
        {
            "create": Command(
                "a new token for a municipality's gateway, or the admin token",
                "Print a new token, alone on the last line (it is stored hashed and shown only "
                "now).",
                (
                    _arg("municipality", nargs="?", help=MUNICIPALITY_HELP),
                    _switch("--admin", "an admin token (manages polls)"),
                ),
            ),
            "list": Command(
                "the tokens in use (never the tokens themselves)",
                args=(_switch("--all", "revoked tokens too"),),
            ),
            "revoke": Command("revoke a token by its id (see `token list`)", args=(token_id,)),
            "rotate": Command(
                "revoke a token and print a new one with the same scope (last line)",
                args=(token_id,),
            ),
        },
    )


def _bench_parsers() -> Actions:
    return Actions(
        "the bench registry: which municipality each bench belongs to",
        {
            "add": Command(
                "register a bench to its municipality",
                "Register BENCH to MUNICIPALITY: that municipality's token then writes its "
                "votes, bench-days and state, and no other token does. Running it again "
                "changes nothing; moving a registered bench to another municipality needs "
                "--move.",
                (
                    _arg("bench", help="bench id, e.g. mostar-01"),
                    _arg("municipality", help=MUNICIPALITY_HELP),
                    _switch("--move", "move a bench registered elsewhere"),
                    _arg(
                        "--vote-cap",
                        type=int,
                        help="votes per hour per poll the bench may add (default "
                        f"{registry.DEFAULT_VOTE_CAP}, the firmware's own cap); the excess is "
                        "refused",
                    ),
                ),
            ),
            "import": Command(
                "register every bench of the deployment's inventory",
                "Register every [benches.<id>] of a deployment's inventory.toml (or of the "
                "deployment folder holding it) to its `municipality`, in one transaction. "
                "Idempotent; a bench registered to another municipality is an error unless "
                "--move is given.",
                (
                    _arg("inventory", type=Path, help="inventory.toml or the deployment folder"),
                    _switch("--move", "move benches registered elsewhere"),
                ),
            ),
            "list": Command("every registered bench"),
        },
    )


def _poll_parsers() -> Actions:
    return Actions(
        "polls: create, list",
        {
            "create": Command(
                "create a poll",
                'Create a poll, from --json FILE (a Poll plus "municipalities") or from the '
                "options below. Question and labels in Bosnian are required; hr, sr (Cyrillic "
                "or Latin, as given) and en are optional. Times: Unix seconds or ISO 8601 "
                "(Sarajevo time if no zone is given).",
                (
                    _arg("--json", type=Path, help="a JSON file with the whole poll"),
                    _arg("--id", help="poll id, e.g. mostar-2026-park-lights"),
                    _arg(
                        "--municipality",
                        action="append",
                        default=[],
                        help="where it runs (repeat)",
                    ),
                    _arg("--opens", type=parse_time, help="opening time"),
                    _arg("--closes", type=parse_time, help="closing time"),
                    _arg("--question", help="the question in Bosnian"),
                    *(
                        _arg(f"--question-{lang}", help=f"the question in {lang}")
                        for lang in OTHER_LANGUAGES
                    ),
                    _repeated(
                        "--option",
                        _pair,
                        "ID=LABEL",
                        "an option with its Bosnian label (2 to 4, in touch-pad order)",
                    ),
                    _repeated(
                        "--label",
                        _triple,
                        "LANG:ID=LABEL",
                        "an option's label in another language",
                    ),
                    _arg(
                        "--results",
                        choices=("live", "after_close"),
                        default="live",
                        help="show results while open (live) or only after it closes",
                    ),
                ),
                epilog="example:\n"
                "  klupa portal poll create --db portal.sqlite --id mostar-2026-park \\\n"
                "    --municipality mostar --opens 2026-12-01T08:00 --closes 2026-12-31T20:00 \\\n"
                "    --question 'Da li želite više rasvjete u parku?' \\\n"
                "    --question-en 'More lighting in the park?' \\\n"
                "    --option yes=Da --option no=Ne --label en:yes=Yes --label en:no=No",
            ),
            "list": Command("every poll, newest first"),
        },
    )


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="klupa portal",
        description="The civic-feedback portal: polls, vote results and bench metrics.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, command in commands().items():
        if isinstance(command, Actions):
            group = sub.add_parser(name, help=command.help)
            actions = group.add_subparsers(dest=f"{name}_command", metavar="ACTION")
            for action, leaf in command.actions.items():
                _add_command(actions, action, leaf)
        else:
            _add_command(sub, name, command)
    return parser


def _add_command(sub: Any, name: str, command: Command) -> None:
    raw = command.epilog is not None
    parser = sub.add_parser(
        name,
        help=command.help,
        description=command.description,
        epilog=command.epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter if raw else argparse.HelpFormatter,
    )
    _add_db(parser)
    for flags, options in command.args:
        parser.add_argument(*flags, **options)


def poll_from_args(args: argparse.Namespace) -> dict[str, Any]:
    if args.json:
        try:
            body: dict[str, Any] = json.loads(args.json.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise UsageError(f"--json {args.json}: {exc}") from exc
        return body
    question = {"bs": args.question} if args.question is not None else {}
    for lang in OTHER_LANGUAGES:
        text = getattr(args, f"question_{lang}")
        if text:
            question[lang] = text
    options = [{"id": oid, "label": {"bs": label}} for oid, label in args.option]
    by_id = {o["id"]: o for o in options}
    for lang, oid, label in args.label:
        if oid not in by_id:
            raise UsageError(f"--label {lang}:{oid}: no --option {oid}=…")
        by_id[oid]["label"][lang] = label
    body = {
        "v": 1,
        "id": args.id,
        "opens": args.opens,
        "closes": args.closes,
        "options": options,
        "municipalities": args.municipality,
        "results": args.results,
    }
    if question:
        body["question"] = question
    return body


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if args.command == "serve":
        from portal.server import serve

        return serve(_db(args), args.host, args.port, args.alerts)
    if args.command == "migrate":
        open_database(_db(args))
        print("database schema is up to date")
        return 0
    if args.command is None:
        parser.print_help()
        return 0
    # A command with ACTIONs (token, bench, poll): without one, its own --help.
    action = getattr(args, f"{args.command}_command")
    if action is None:
        parser.parse_args([args.command, "--help"])
    ACTIONS[args.command](open_database(_db(args)), action, args)
    return 0


def _token(engine: Engine, action: str, args: argparse.Namespace) -> None:
    if action == "create":
        if args.admin and args.municipality:
            raise UsageError("give a municipality or --admin, not both")
        if not args.admin and not args.municipality:
            raise UsageError("give a municipality (e.g. mostar) or --admin")
        token = create_token(engine, args.municipality, admin=args.admin)
        scope = "admin" if args.admin else args.municipality
        print(f"new {scope} token (stored hashed, shown only now):")
        print(token)
    elif action == "list":
        print(f"{'id':>4}  {'scope':<14} {'starts':<12} {'created (UTC)':<20} revoked")
        for info in list_tokens(engine, include_revoked=args.all):
            created = datetime.datetime.fromtimestamp(info.created_at, datetime.UTC)
            revoked = "" if info.revoked_at is None else "yes"
            print(
                f"{info.id:>4}  {info.scope:<14} {info.hint:<12} {created:%Y-%m-%d %H:%M:%S}  {revoked}"
            )
    elif action == "revoke":
        info = revoke_token(engine, args.id)
        print(f"revoked token {info.id} ({info.scope})")
    elif action == "rotate":
        token = rotate_token(engine, args.id)
        print(f"token {args.id} revoked; its replacement (shown only now):")
        print(token)


def _bench(engine: Engine, action: str, args: argparse.Namespace) -> None:
    if action == "add":
        done = registry.add_bench(engine, args.bench, args.municipality, args.move, args.vote_cap)
        print(f"{args.bench}: {done} ({args.municipality})")
    elif action == "import":
        outcome = registry.import_inventory(engine, args.inventory, args.move)
        for what in ("added", "moved", "updated", "unchanged"):
            count = sum(1 for done in outcome.values() if done == what)
            if count:
                print(f"{what}: {count}")
        print(f"{len(outcome)} benches in the registry from {args.inventory}")
    else:
        for b in registry.registered(engine):
            cap = b.vote_cap if b.vote_cap is not None else f"{registry.DEFAULT_VOTE_CAP}*"
            print(f"{b.bench:<40} {b.municipality:<16} {cap} votes/h")


def _poll(engine: Engine, action: str, args: argparse.Namespace) -> None:
    if action == "create":
        spec = checks.check_poll(poll_from_args(args))
        poll = store.create_poll(engine, spec)
        print(f"created poll {poll.id} in {', '.join(poll.municipalities)}")
    else:
        for p in store.all_polls(engine):
            print(
                f"{p.id:<40} {i18n.when(p.opens, 'en'):>22} → {i18n.when(p.closes, 'en'):<22} "
                f"{','.join(p.municipalities)}  {p.results}"
            )


# What each command with ACTIONs does, on the migrated database.
ACTIONS: dict[str, Callable[[Engine, str, argparse.Namespace], None]] = {
    "token": _token,
    "bench": _bench,
    "poll": _poll,
}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return run(args, parser)
    except (
        UsageError,
        TokenError,
        DatabaseError,
        store.PollExists,
        ServeError,
        registry.RegistryError,
    ) as exc:
        print(f"klupa portal: {exc}", file=sys.stderr)
        return 2
    except checks.BadField as exc:
        print(f"klupa portal: poll {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - one line for the operator, never a traceback
        print(f"klupa portal: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
