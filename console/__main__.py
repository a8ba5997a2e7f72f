"""Command line: `python -m console serve | staff-user | purge | erase | retention | sync`."""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import sys
import time

from sqlalchemy.engine import Engine

from console.config import DEFAULT_PORT, ConfigError, Settings, database_url, describe_url


def _engine() -> Engine:
    from console.db import create_tables, make_engine

    engine = make_engine(database_url())
    create_tables(engine)
    return engine


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from console.app import create_app

    settings = Settings.from_env(dev=True if args.dev else None)
    if settings.dev:
        print(
            "console: mode développement (CONSOLE_DEV) : clé de session éphémère, cookie sans 'Secure'",
            file=sys.stderr,
        )
    app = create_app(settings)
    # one process: the login throttle and the indexer's lock live in memory
    # ws="none": no websocket here, and rasa pins a websockets older than uvicorn's own support
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level="info",
        access_log=not args.quiet,
        ws="none",
        # X-Forwarded-* are read by the app, from CONSOLE_TRUSTED_PROXIES only
        # (console.app.TrustedProxyHeaders): uvicorn's own handling stays off
        proxy_headers=False,
    )
    return 0


def cmd_staff_user(args: argparse.Namespace) -> int:
    from console import auth

    engine = _engine()
    if args.delete:
        found = auth.delete_user(engine, args.name)
        print(f"compte {args.name} supprimé" if found else f"pas de compte {args.name}")
        return 0 if found else 1
    if args.role not in auth.ROLES:
        print("ROLE doit valoir viewer, editor ou admin", file=sys.stderr)
        return 2
    password = os.environ.get("STAFF_PASSWORD")
    if not password:
        if not sys.stdin.isatty():
            print(
                "STAFF_PASSWORD n'est pas défini et il n'y a pas de terminal pour le demander",
                file=sys.stderr,
            )
            return 2
        password = getpass.getpass(f"Mot de passe pour {args.name} : ")
        if getpass.getpass("Encore une fois : ") != password:
            print("les deux mots de passe diffèrent", file=sys.stderr)
            return 2
    try:
        created = auth.upsert_user(engine, args.name, args.role, password)
    except ValueError as error:
        print(f"refusé : {error}", file=sys.stderr)
        return 2
    print(f"compte {args.name} ({args.role}) {'créé' if created else 'mis à jour'}")
    return 0


def cmd_purge(args: argparse.Namespace) -> int:
    from console import queries

    if not 0 <= args.days <= 36500:
        print("--days doit être entre 0 et 36500", file=sys.stderr)
        return 2
    engine = _engine()
    print(f"base : {describe_url(engine.url)}", file=sys.stderr)
    cutoff = queries.cutoff_for_days(args.days)
    preview = queries.purge_preview(engine, cutoff)
    from datetime import datetime

    from console.indexer import NOUMEA

    when = datetime.fromtimestamp(cutoff, NOUMEA).strftime("%d/%m/%Y %H:%M")
    print(
        f"{preview['conversations']} conversation(s) ({preview['events']} événements) ont des "
        f"événements de plus de {args.days} jours (avant le {when}, heure de Nouméa) : ces "
        f"événements seront supprimés ; {preview['whole']} conversation(s) disparaîtront entièrement."
    )
    if args.dry_run or preview["events"] == 0:
        return 0
    if not args.yes:
        if not sys.stdin.isatty():
            print("confirmation requise : relancer avec --yes", file=sys.stderr)
            return 2
        if input("Supprimer ? Tapez 'oui' : ").strip().lower() != "oui":
            print("rien n'est supprimé")
            return 1
    done = queries.purge(engine, cutoff)
    print(
        f"supprimé : {done['events']} événements de {done['conversations']} conversation(s), "
        f"dont {done['whole']} entièrement"
    )
    return 0


def cmd_erase(args: argparse.Namespace) -> int:
    """Erases one customer: by sender id, or every conversation whose messages contain a text."""
    from console import queries
    from console.app import erase_customer, ref_key

    engine = _engine()
    print(f"base : {describe_url(engine.url)}", file=sys.stderr)
    if args.sender:
        senders = [args.sender]
    else:
        try:
            senders = [m["sender_id"] for m in queries.senders_mentioning(engine, args.search)]
        except ValueError:
            print("--search : 4 caractères au moins", file=sys.stderr)
            return 2
    # the reference the console shows; the key matters only for the log line
    key = ref_key(os.environ.get("CONSOLE_SECRET_KEY") or "cli")
    found = senders
    print(f"{len(found)} conversation(s) concernée(s).")
    if not found or args.dry_run:
        return 0
    if not args.yes:
        if not sys.stdin.isatty():
            print("confirmation requise : relancer avec --yes", file=sys.stderr)
            return 2
        if input("Tout effacer ? Tapez 'oui' : ").strip().lower() != "oui":
            print("rien n'est effacé")
            return 1
    for sender_id in found:
        counts = erase_customer(engine, key, sender_id, "the command line")
        print("effacé : " + ", ".join(f"{n} {kind}" for kind, n in counts.items()))
    return 0


def cmd_retention(args: argparse.Namespace) -> int:
    """The retention purge on its own (CHAT_CAGOU_RETENTION_DAYS): once, or at start and then
    daily, for a topology that runs no console (deploy/prod.py starts it)."""
    from console.app import RETENTION_INTERVAL, retention_purge
    from console.config import retention_days

    days = args.days or retention_days(os.environ.get("CHAT_CAGOU_RETENTION_DAYS"))
    if not days or not 1 <= days <= 36500:
        print(
            "CHAT_CAGOU_RETENTION_DAYS (or --days) must be a number of days from 1 to 36500", file=sys.stderr
        )
        return 2
    engine = _engine()
    logging.getLogger("console").info("retention on %s: %d days", describe_url(engine.url), days)
    while True:
        try:
            retention_purge(engine, days)
        except Exception:
            if args.once:
                raise
            logging.getLogger("console").exception("retention purge failed; next try in a day")
        if args.once:
            return 0
        time.sleep(RETENTION_INTERVAL)


def cmd_sync(args: argparse.Namespace) -> int:
    from console import indexer

    engine = _engine()
    if args.rebuild:
        with engine.begin() as conn:
            indexer.reset(conn)
    started = time.perf_counter()
    count = indexer.sync(engine)
    print(f"{count} événements indexés en {time.perf_counter() - started:.1f} s")
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    parser = argparse.ArgumentParser(
        prog="python -m console", description="Console de revue des conversations"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="start the web console")
    serve.add_argument("--host", default=os.environ.get("CONSOLE_HOST", "127.0.0.1"))
    serve.add_argument("--port", type=int, default=int(os.environ.get("CONSOLE_PORT", DEFAULT_PORT)))
    serve.add_argument("--dev", action="store_true", help="development: no CONSOLE_SECRET_KEY needed")
    serve.add_argument("--quiet", action="store_true", help="no access log")
    serve.set_defaults(run=cmd_serve)
    staff = sub.add_parser(
        "staff-user", help="create or update a staff account (password: STAFF_PASSWORD or prompt)"
    )
    staff.add_argument("name")
    staff.add_argument("--role", default="viewer", help="viewer, editor or admin")
    staff.add_argument("--delete", action="store_true", help="delete the account")
    staff.set_defaults(run=cmd_staff_user)
    purge = sub.add_parser("purge", help="delete the events older than N days")
    purge.add_argument("--days", type=int, required=True)
    purge.add_argument("--yes", action="store_true", help="no confirmation prompt")
    purge.add_argument("--dry-run", action="store_true", help="only count")
    purge.set_defaults(run=cmd_purge)
    erase = sub.add_parser(
        "erase", help="erase one customer: events, tags, notes, reviews, labels, Messenger dedupe ids"
    )
    which = erase.add_mutually_exclusive_group(required=True)
    which.add_argument("--sender", help="the conversation's sender id")
    which.add_argument("--search", help="every conversation whose customer messages contain this text")
    erase.add_argument("--yes", action="store_true", help="no confirmation prompt")
    erase.add_argument("--dry-run", action="store_true", help="only count")
    erase.set_defaults(run=cmd_erase)
    retention = sub.add_parser(
        "retention", help="delete events older than CHAT_CAGOU_RETENTION_DAYS now, then daily"
    )
    retention.add_argument("--days", type=int, help="instead of CHAT_CAGOU_RETENTION_DAYS")
    retention.add_argument("--once", action="store_true", help="one run, then exit")
    retention.set_defaults(run=cmd_retention)
    sync = sub.add_parser("sync", help="index new events now")
    sync.add_argument(
        "--rebuild", action="store_true", help="drop the index and build it again from the events"
    )
    sync.set_defaults(run=cmd_sync)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except ConfigError as error:
        print(f"console : {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
