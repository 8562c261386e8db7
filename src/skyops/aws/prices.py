"""SageMaker on-demand instance prices, offline: one JSON table per region shipped with the package.

    table = load_prices("eu-west-1")                 # skyops/aws/prices/eu-west-1.json
    table.hourly("Training", "ml.g4dn.xlarge")       # -> USD per instance-hour, or None
    fetch_price_table(price_list_client(AwsGuard()), "eu-west-1")   # the AWS Price List API, through the guard

An estimate must not need AWS (`skyops cost estimate` is offline, `skyops sagemaker start` prints one
before its first request), so prices are data in the package, refreshed by `tools/refresh_prices.py`
(docs/cost.md). A table says where its prices came from: `fetched` is the date the Price List API was
read, or None for a seed table typed in by hand, which the estimate says aloud.

The Price List API (`pricing` GetProducts, service AmazonSageMaker) answers from us-east-1,
eu-central-1 or ap-south-1 whatever the region asked about; each item is a JSON *string* holding
`product` (productFamily "ML Instance"; attributes regionCode, component, instanceName) and
`terms.OnDemand.<offer>.priceDimensions.<rate>` (unit "Hrs", pricePerUnit.USD).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

from skyops.aws.session import AwsGuard, aws_request
from skyops.errors import ConfigError, StateFileError

COMPONENTS = ("Processing", "Training", "Hosting")  # the Price List's `component` of each job kind skyops runs
PRICE_LIST_REGION = "us-east-1"  # one of the Price List API's own endpoints
SERVICE_CODE = "AmazonSageMaker"
REFRESH = "python tools/refresh_prices.py --region {region}"


@dataclass(frozen=True)
class PriceTable:
    """USD per instance-hour by component and instance type, for one region.

    Args:
        fetched: ISO date the Price List API was read, or None for a seed table typed in by hand.
        source: where the numbers came from, in words.
    """

    region: str
    source: str
    fetched: str | None
    prices: Mapping[str, Mapping[str, float]] = field(default_factory=dict)  # component -> instance type -> USD/hour

    def hourly(self, component: str, instance_type: str) -> float | None:
        return self.prices.get(component, {}).get(instance_type)

    def as_json(self) -> dict[str, Any]:
        return {
            "region": self.region,
            "currency": "USD",
            "unit": "instance-hour, on demand",
            "source": self.source,
            "fetched": self.fetched,
            "prices": {c: dict(sorted(self.prices[c].items())) for c in sorted(self.prices)},
        }


def price_dir() -> Path:
    """The package's folder of price tables (src/skyops/aws/prices/)."""
    return Path(str(resources.files("skyops.aws") / "prices"))


def shipped_regions() -> list[str]:
    return sorted(p.stem for p in price_dir().glob("*.json"))


def load_prices(region: str) -> PriceTable:
    """The shipped table of `region`.

    Raises:
        ConfigError: no table for the region (the shipped ones are named, and the command that adds one).
        StateFileError: the table is damaged.
    """
    path = price_dir() / f"{region}.json"
    if not path.is_file():
        raise ConfigError(
            f"no offline SageMaker prices for region {region!r} (shipped: {', '.join(shipped_regions()) or 'none'})",
            hint=f"add them with `{REFRESH.format(region=region)}` (reads the AWS Price List API through profile ab)",
        )
    try:
        data = json.loads(path.read_text())
        prices = {str(c): {str(t): float(usd) for t, usd in types.items()} for c, types in data["prices"].items()}
        return PriceTable(region=str(data["region"]), source=str(data["source"]), fetched=data.get("fetched"), prices=prices)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise StateFileError(
            f"price table {path} is damaged ({exc})", hint=f"write it again with `{REFRESH.format(region=region)}`"
        ) from exc


def parse_price_list(items: Iterable[str | Mapping[str, Any]], region: str) -> tuple[dict[str, dict[str, float]], list[str]]:
    """On-demand USD per hour by component and instance, from GetProducts' PriceList items; and what was skipped, in words.

    Kept: productFamily "ML Instance", the region's regionCode, a component of COMPONENTS, one on-demand
    price per hour in USD. Two products of the same component and instance keep the higher price (an
    estimate errs high), and say so.
    """
    prices: dict[str, dict[str, float]] = {}
    notes: list[str] = []
    for raw in items:
        item = json.loads(raw) if isinstance(raw, str) else raw
        product = item.get("product", {})
        attributes = product.get("attributes", {})
        component, instance = attributes.get("component"), attributes.get("instanceName")
        if product.get("productFamily") != "ML Instance" or attributes.get("regionCode") != region or component not in COMPONENTS:
            continue
        hourly = [
            float(dimension["pricePerUnit"]["USD"])
            for term in item.get("terms", {}).get("OnDemand", {}).values()
            for dimension in term.get("priceDimensions", {}).values()
            if dimension.get("unit") == "Hrs" and "USD" in dimension.get("pricePerUnit", {})
        ]
        if not instance or len(hourly) != 1:
            notes.append(f"skipped {component} {instance or '(no instanceName)'}: {len(hourly)} on-demand hourly USD prices, expected 1")
            continue
        known = prices.setdefault(component, {}).get(instance)
        if known is not None and known != hourly[0]:
            notes.append(f"{component} {instance}: two prices ({known} and {hourly[0]}), kept the higher")
        prices[component][instance] = max(hourly[0], known or 0.0)
    return prices, notes


def price_list_client(guard: AwsGuard) -> Any:
    """The guard's client of the Price List API, in a region that serves it (PRICE_LIST_REGION)."""
    return guard.client("pricing", region_name=PRICE_LIST_REGION)


def fetch_price_table(client: Any, region: str, today: date | None = None) -> tuple[PriceTable, list[str]]:
    """The region's SageMaker instance prices from the Price List API (GetProducts, every page), and the parse notes.

    Args:
        client: a guarded `pricing` client (`price_list_client`).
        region: the region priced.
    """
    filters = [
        {"Type": "TERM_MATCH", "Field": "productFamily", "Value": "ML Instance"},
        {"Type": "TERM_MATCH", "Field": "regionCode", "Value": region},
    ]
    items: list[str] = []
    with aws_request(f"read the SageMaker price list of {region}", hint="the profile's role needs pricing:GetProducts"):
        for page in client.get_paginator("get_products").paginate(ServiceCode=SERVICE_CODE, Filters=filters, FormatVersion="aws_v1"):
            items += page.get("PriceList", [])
    prices, notes = parse_price_list(items, region)
    if not prices:
        raise ConfigError(
            f"the Price List API listed no SageMaker instance prices for {region!r} ({len(items)} products read)",
            hint="check the region name (e.g. eu-west-1)",
        )
    fetched = (today or date.today()).isoformat()
    return PriceTable(region=region, source=f"AWS Price List API, {SERVICE_CODE} GetProducts", fetched=fetched, prices=prices), notes
