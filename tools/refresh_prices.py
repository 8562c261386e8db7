"""Refresh the SageMaker price tables shipped with skyops (src/skyops/aws/prices/<region>.json) from the AWS Price List API.

    python tools/refresh_prices.py --region eu-west-1                 # rewrite eu-west-1.json
    python tools/refresh_prices.py --region eu-west-1 --region us-east-1
    python tools/refresh_prices.py --all                              # every table already shipped

Every request goes through skyops' profile guard (profile ab, or $SKYOPS_AWS_PROFILE): a refused profile sends
nothing. The Price List API is free; its role needs pricing:GetProducts. Each table is written atomically and
says the day it was read; `skyops cost estimate` prints that date. Commit the changed tables.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from skyops.aws.prices import fetch_price_table, price_dir, price_list_client, shipped_regions
from skyops.aws.session import AwsGuard
from skyops.errors import SkyopsError
from skyops.pipeline.hashing import write_json_atomic
from skyops.settings import load_settings


def refresh(client: Any, regions: Iterable[str], out: Path) -> list[str]:
    """Fetch each region's table and write it to `out/<region>.json`; what to tell the user, one line each."""
    lines = []
    for region in regions:
        table, notes = fetch_price_table(client, region)
        target = out / f"{region}.json"
        write_json_atomic(target, table.as_json(), sort_keys=False)
        count = sum(len(types) for types in table.prices.values())
        lines.append(
            f"{target}: {count} prices ({', '.join(f'{c} {len(t)}' for c, t in sorted(table.prices.items()))}), read {table.fetched}"
        )
        lines += [f"  note: {note}" for note in notes]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--region", action="append", default=[], help="a region to refresh (repeatable)")
    parser.add_argument("--all", action="store_true", help="refresh every table already shipped")
    parser.add_argument("--out", type=Path, default=price_dir(), help="folder of the tables (default: the package's)")
    args = parser.parse_args(argv)
    regions = sorted({*args.region, *(shipped_regions() if args.all else [])})
    if not regions:
        parser.error("name a region (--region eu-west-1) or --all")
    try:
        client = price_list_client(AwsGuard.from_settings(load_settings()))
        for line in refresh(client, regions, args.out):
            print(line)
    except SkyopsError as e:
        print(f"error: {e.message}", file=sys.stderr)
        if e.hint:
            print(f"hint: {e.hint}", file=sys.stderr)
        return e.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
