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
from pathlib import Path
from typing import Any

from klupa.console import Parser
from portal import checks, i18n, registry, store
from portal.db import DatabaseError, open_database
from portal.server import ServeError
from portal.tokens import TokenError, create_token, list_tokens, revoke_token, rotate_token

DB_ENV = "KLUPA_PORTAL_DB"


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
        t = t.replace(tzinfo=store.LOCAL)
    return int(t.timestamp())


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


def _command(sub: Any, name: str, help: str, **more: Any) -> argparse.ArgumentParser:
    """A command on the database: `--db` first, then its own arguments."""
    parser: argparse.ArgumentParser = sub.add_parser(name, help=help, **more)
    _add_db(parser)
    return parser


def _actions(sub: Any, name: str, help: str) -> Any:
    """A command whose ACTION names what it does (`token create`, `bench list`, ...)."""
    return sub.add_parser(name, help=help).add_subparsers(dest=f"{name}_command", metavar="ACTION")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="klupa portal",
        description="The civic-feedback portal: polls, vote results and bench metrics.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_serve(sub)
    _command(sub, "migrate", "bring the database schema to the newest revision")
    _add_token(_actions(sub, "token", "API tokens: create, list, revoke, rotate"))
    _add_bench(
        _actions(sub, "bench", "the bench registry: which municipality each bench belongs to")
    )
    _add_poll(_actions(sub, "poll", "polls: create, list"))
    return parser


def _add_serve(sub: Any) -> None:
    serve = _command(
        sub,
        "serve",
        "serve the API and pages (migrates the database first)",
        description="Serve the portal until SIGINT or SIGTERM (then exit 0). Logs are JSON lines "
        "on stderr. The database schema is migrated to the newest revision first.",
    )
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    serve.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    serve.add_argument(
        "--alerts",
        help="a TOML file with an [alerts] table: send 'gateway down' alerts (e-mail, webhook)",
    )


def _add_token(actions: Any) -> None:
    create = _command(
        actions,
        "create",
        "a new token for a municipality's gateway, or the admin token",
        description="Print a new token, alone on the last line (it is stored hashed and shown "
        "only now).",
    )
    create.add_argument("municipality", nargs="?", help="municipality id, e.g. mostar")
    create.add_argument("--admin", action="store_true", help="an admin token (manages polls)")
    listing = _command(actions, "list", "the tokens in use (never the tokens themselves)")
    listing.add_argument("--all", action="store_true", help="revoked tokens too")
    for name, what in (
        ("revoke", "revoke a token by its id (see `token list`)"),
        ("rotate", "revoke a token and print a new one with the same scope (last line)"),
    ):
        _command(actions, name, what).add_argument("id", type=int)


def _add_bench(actions: Any) -> None:
    add = _command(
        actions,
        "add",
        "register a bench to its municipality",
        description="Register BENCH to MUNICIPALITY: that municipality's token then writes its "
        "votes, bench-days and state, and no other token does. Running it again changes "
        "nothing; moving a registered bench to another municipality needs --move.",
    )
    add.add_argument("bench", help="bench id, e.g. mostar-01")
    add.add_argument("municipality", help="municipality id, e.g. mostar")
    add.add_argument("--move", action="store_true", help="move a bench registered elsewhere")
    add.add_argument(
        "--vote-cap",
        type=int,
        help="votes per hour per poll the bench may add (default "
        f"{registry.DEFAULT_VOTE_CAP}, the firmware's own cap); the excess is refused",
    )
    inventory = _command(
        actions,
        "import",
        "register every bench of the deployment's inventory",
        description="Register every [benches.<id>] of a deployment's inventory.toml (or of the "
        "deployment folder holding it) to its `municipality`, in one transaction. Idempotent; "
        "a bench registered to another municipality is an error unless --move is given.",
    )
    inventory.add_argument("inventory", type=Path, help="inventory.toml or the deployment folder")
    inventory.add_argument("--move", action="store_true", help="move benches registered elsewhere")
    _command(actions, "list", "every registered bench")


def _add_poll(actions: Any) -> None:
    pc = _command(
        actions,
        "create",
        "create a poll",
        description='Create a poll, from --json FILE (a Poll plus "municipalities") or from the '
        "options below. Question and labels in Bosnian are required; hr, sr (Cyrillic or Latin, "
        "as given) and en are optional. Times: Unix seconds or ISO 8601 (Sarajevo time if no "
        "zone is given).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  klupa portal poll create --db portal.sqlite --id mostar-2026-park \\\n"
        "    --municipality mostar --opens 2026-12-01T08:00 --closes 2026-12-31T20:00 \\\n"
        "    --question 'Da li želite više rasvjete u parku?' \\\n"
        "    --question-en 'More lighting in the park?' \\\n"
        "    --option yes=Da --option no=Ne --label en:yes=Yes --label en:no=No",
    )
    pc.add_argument("--json", type=Path, help="a JSON file with the whole poll")
    pc.add_argument("--id", help="poll id, e.g. mostar-2026-park-lights")
    pc.add_argument("--municipality", action="append", default=[], help="where it runs (repeat)")
    pc.add_argument("--opens", type=parse_time, help="opening time")
    pc.add_argument("--closes", type=parse_time, help="closing time")
    pc.add_argument("--question", help="the question in Bosnian")
    for lang in ("hr", "sr", "en"):
        pc.add_argument(f"--question-{lang}", help=f"the question in {lang}")
    # Repeated: each gives an option (ID=LABEL) or another language's label (LANG:ID=LABEL).
    for flag, parse, metavar, what in (
        (
            "--option",
            _pair,
            "ID=LABEL",
            "an option with its Bosnian label (2 to 4, in touch-pad order)",
        ),
        ("--label", _triple, "LANG:ID=LABEL", "an option's label in another language"),
    ):
        pc.add_argument(flag, type=parse, action="append", default=[], metavar=metavar, help=what)
    pc.add_argument(
        "--results",
        choices=("live", "after_close"),
        default="live",
        help="show results while open (live) or only after it closes",
    )
    _command(actions, "list", "every poll, newest first")


def poll_from_args(args: argparse.Namespace) -> dict[str, Any]:
    if args.json:
        try:
            body: dict[str, Any] = json.loads(args.json.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise UsageError(f"--json {args.json}: {exc}") from exc
        return body
    question = {"bs": args.question} if args.question is not None else {}
    for lang in ("hr", "sr", "en"):
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
    if args.command == "token":
        if args.token_command is None:
            parser.parse_args(["token", "--help"])
        engine = open_database(_db(args))
        if args.token_command == "create":
            if args.admin and args.municipality:
                raise UsageError("give a municipality or --admin, not both")
            if not args.admin and not args.municipality:
                raise UsageError("give a municipality (e.g. mostar) or --admin")
            token = create_token(engine, args.municipality, admin=args.admin)
            scope = "admin" if args.admin else args.municipality
            print(f"new {scope} token (stored hashed, shown only now):")
            print(token)
        elif args.token_command == "list":
            print(f"{'id':>4}  {'scope':<14} {'starts':<12} {'created (UTC)':<20} revoked")
            for info in list_tokens(engine, include_revoked=args.all):
                created = datetime.datetime.fromtimestamp(info.created_at, datetime.UTC)
                revoked = "" if info.revoked_at is None else "yes"
                print(
                    f"{info.id:>4}  {info.scope:<14} {info.hint:<12} {created:%Y-%m-%d %H:%M:%S}  {revoked}"
                )
        elif args.token_command == "revoke":
            info = revoke_token(engine, args.id)
            print(f"revoked token {info.id} ({info.scope})")
        elif args.token_command == "rotate":
            token = rotate_token(engine, args.id)
            print(f"token {args.id} revoked; its replacement (shown only now):")
            print(token)
        return 0
    if args.command == "bench":
        if args.bench_command is None:
            parser.parse_args(["bench", "--help"])
        engine = open_database(_db(args))
        if args.bench_command == "add":
            done = registry.add_bench(
                engine, args.bench, args.municipality, args.move, args.vote_cap
            )
            print(f"{args.bench}: {done} ({args.municipality})")
        elif args.bench_command == "import":
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
        return 0
    if args.command == "poll":
        if args.poll_command is None:
            parser.parse_args(["poll", "--help"])
        engine = open_database(_db(args))
        if args.poll_command == "create":
            spec = checks.check_poll(poll_from_args(args))
            poll = store.create_poll(engine, spec)
            print(f"created poll {poll.id} in {', '.join(poll.municipalities)}")
        else:
            for p in store.all_polls(engine):
                print(
                    f"{p.id:<40} {i18n.when(p.opens, 'en'):>22} → {i18n.when(p.closes, 'en'):<22} "
                    f"{','.join(p.municipalities)}  {p.results}"
                )
        return 0
    parser.print_help()
    return 0


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
