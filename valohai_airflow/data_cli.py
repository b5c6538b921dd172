"""`valohai-airflow data …`: the data catalogue from the command line (valohai_airflow.data does the work).

The store is `--store URL` (S3 credentials and endpoint from boto3's usual environment), else the
artefact store of Airflow's `[valohai]` settings, as the workers use it. `alias set` and `dataset create`
also send the change's Asset event to Airflow (`data.announce`; `--no-events`: none), one line each.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from valohai_airflow import data
from valohai_airflow.errors import ValohaiAirflowError
from valohai_airflow.store.catalogue import AliasEvent, DatasetEvent, DatasetVersion, ModelVersion


def add_parser(commands: Any) -> None:
    """The `data` subcommand group, added to the main parser's subcommands."""
    parser = commands.add_parser("data", help="datum aliases, datasets and models in the catalogue")
    parser.add_argument("--store", help="the artefact store URL (default: Airflow's [valohai] store_url)")
    group = parser.add_subparsers(dest="data_command", required=True)

    alias = group.add_parser("alias", help="datum aliases").add_subparsers(
        dest="alias_command", required=True
    )
    alias_set = alias.add_parser("set", help="create a datum alias or move it to a file")
    alias_set.add_argument("name")
    alias_set.add_argument("url", help="a local path, file://, s3:// or http(s):// URL of one file")
    alias_set.add_argument("--copy", action="store_true", help="copy the file into the store")
    _events_flag(alias_set)

    datum = group.add_parser("datum", help="datums (files by id)").add_subparsers(
        dest="datum_command", required=True
    )
    datum_add = datum.add_parser("add", help="record a file as a datum, e.g. under the id valohai.yaml names")
    datum_add.add_argument("url")
    datum_add.add_argument("--id", dest="datum_id", help="the datum id (default: made from URL and content)")
    datum_add.add_argument("--copy", action="store_true", help="copy the file into the store")

    dataset = group.add_parser("dataset", help="dataset versions").add_subparsers(
        dest="dataset_command", required=True
    )
    create = dataset.add_parser("create", help="create a dataset version from existing files")
    create.add_argument("version", metavar="NAME/VERSION")
    create.add_argument("urls", nargs="+", metavar="URL", help="files, folders or s3://…/ prefixes")
    create.add_argument("--from", dest="base", metavar="REF", help="carry over this version's files")
    create.add_argument(
        "--exclude", action="append", default=[], metavar="FILE", help="leave out a base file"
    )
    create.add_argument(
        "--alias", action="append", default=[], help="point this dataset alias at the version"
    )
    create.add_argument("--copy", action="store_true", help="copy the files into the store")
    _events_flag(create)

    listing = group.add_parser("list", help="every alias, dataset and model with its current target")
    listing.add_argument("--format", choices=["text", "json"], default="text")
    shown = group.add_parser("history", help="an alias's, dataset's or model's changes, oldest first")
    shown.add_argument("name", help="a name, or datum://NAME, dataset://NAME, model://NAME")
    shown.add_argument("--format", choices=["text", "json"], default="text")


def _events_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-events",
        dest="events",
        action="store_false",
        help="send no Asset event to Airflow (by default the DAGs scheduled on this change start)",
    )


def _event_line(event: AliasEvent | DatasetEvent | ModelVersion) -> str:
    when = f"{event.producer.at:%Y-%m-%d %H:%M:%S}"
    who = event.producer.describe()
    if isinstance(event, AliasEvent):
        return f"{when}  datum://{event.name} #{event.seq} -> {event.file.uri}  ({who})"
    if isinstance(event, DatasetEvent):
        what = (
            f"alias {event.alias} -> {event.version}" if event.alias else f"version {event.version} created"
        )
        return f"{when}  dataset://{event.dataset} #{event.seq} {what}  ({who})"
    return f"{when}  {event.reference} created with {len(event.files)} file(s)  ({who})"


def _announce(record: AliasEvent | DatasetVersion, events: bool) -> None:
    for line in data.announce([record]) if events else []:
        print(line)


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except ValohaiAirflowError as error:
        print(f"valohai-airflow data: {error}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    store = args.store
    if args.data_command == "alias":
        moved = data.set_alias(args.name, args.url, copy=args.copy, store=store, events=False)
        print(f"datum://{moved.name} -> {moved.file.uri} (change {moved.seq}, datum {moved.file.datum_id})")
        _announce(moved, args.events)
    elif args.data_command == "datum":
        record = data.add_datum(args.url, datum_id=args.datum_id, copy=args.copy, store=store)
        print(f"{record.reference} -> {record.file.uri}")
    elif args.data_command == "dataset":
        version = data.create_dataset_version(
            args.version,
            args.urls,
            base=args.base,
            exclude=args.exclude,
            aliases=args.alias,
            copy=args.copy,
            store=store,
            events=False,
        )
        print(f"{version.reference}: {len(version.files)} file(s)")
        for file in version.files:
            print(f"  {file.name}  {file.uri}")
        _announce(version, args.events)
    elif args.data_command == "list":
        entries = data.list_entries(store)
        if args.format == "json":
            print(json.dumps([e.model_dump(mode="json") for e in entries], indent=2))
        for e in entries if args.format == "text" else []:
            print(
                f"{e.kind:8} {e.name}  {e.current}  ({e.events} change(s), last {e.updated_at:%Y-%m-%d %H:%M:%S})"
            )
    else:
        events = data.history(args.name, store)
        if args.format == "json":
            print(json.dumps([e.model_dump(mode="json") for e in events], indent=2))
        for event in events if args.format == "text" else []:
            print(_event_line(event))
    return 0
