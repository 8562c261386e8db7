"""The offline price tables: the shipped ones load and price every instance type skyops uses by default; the refresh
tool reads the Price List API through the guard, tested against a recorded response shape.

moto has no Price List (`pricing`) service, so the refresh is tested with botocore's Stubber on a guarded client:
the Stubber checks each request against botocore's model of GetProducts (and the parameters we expect) and each
canned response against the model's output shape. The responses (tests/aws/data/pricing-get-products-sagemaker.json)
are written in the shape AWS documents and returns (each PriceList item a JSON string: product.attributes with
regionCode, component, instanceName; terms.OnDemand...priceDimensions with unit and pricePerUnit.USD); the prices
in them are illustrative, and the items include what the parser must skip.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from tools import refresh_prices

from skyops.aws import prices
from skyops.aws.prices import COMPONENTS, PriceTable, fetch_price_table, load_prices, parse_price_list, price_list_client, shipped_regions
from skyops.aws.session import AwsGuard
from skyops.errors import ConfigError, StateFileError
from skyops.pipeline.sagemaker.settings import SageMakerSettings

from .conftest import AwsFiles, MotoServer

RECORDED = Path(__file__).parent / "data" / "pricing-get-products-sagemaker.json"
FILTERS = [
    {"Type": "TERM_MATCH", "Field": "productFamily", "Value": "ML Instance"},
    {"Type": "TERM_MATCH", "Field": "regionCode", "Value": "eu-west-1"},
]


def recorded_pages() -> list[dict[str, Any]]:
    return json.loads(RECORDED.read_text())["pages"]


@pytest.fixture
def stubbed(aws_files: AwsFiles) -> Any:
    """A guarded pricing client whose two GetProducts pages come from the recorded responses (Stubber: no network)."""
    from botocore.stub import Stubber

    client = price_list_client(AwsGuard())
    stubber = Stubber(client)
    first, second = recorded_pages()
    request = {"ServiceCode": "AmazonSageMaker", "Filters": FILTERS, "FormatVersion": "aws_v1"}
    stubber.add_response("get_products", first, request)
    stubber.add_response("get_products", second, {**request, "NextToken": "page-2-token"})
    stubber.activate()
    yield client
    stubber.assert_no_pending_responses()  # both pages were asked for, in order
    stubber.deactivate()


@pytest.mark.parametrize("region", shipped_regions())
def test_each_shipped_table_prices_every_instance_type_skyops_uses_by_default(region: str) -> None:
    table = load_prices(region)
    defaults = SageMakerSettings.__dataclass_fields__
    assert table.region == region and set(table.prices) == set(COMPONENTS)
    assert table.hourly("Processing", defaults["processing_instance_type"].default) is not None
    assert table.hourly("Training", defaults["training_instance_type"].default) is not None
    assert all(table.hourly("Hosting", t) for t in defaults["inference_instance_types"].default)
    assert all(0 < usd < 100 for types in table.prices.values() for usd in types.values())


def test_an_unshipped_region_and_a_damaged_table_are_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(
        ConfigError, match=r"^no offline SageMaker prices for region 'mars-north-1' \(shipped: eu-west-1, us-east-1\)$"
    ) as info:
        load_prices("mars-north-1")
    assert (
        info.value.hint
        == "add them with `python tools/refresh_prices.py --region mars-north-1` (reads the AWS Price List API through profile ab)"
    )
    (tmp_path / "eu-west-1.json").write_text('{"region": "eu-west-1", "prices": {"Training": {"ml.m5.xlarge": "cheap"}}}')
    monkeypatch.setattr(prices, "price_dir", lambda: tmp_path)
    with pytest.raises(StateFileError, match=rf"^price table {tmp_path}/eu-west-1.json is damaged"):
        load_prices("eu-west-1")


def test_the_price_list_is_parsed_from_the_recorded_shape() -> None:
    items = [item for page in recorded_pages() for item in page["PriceList"]]
    found, notes = parse_price_list(items, "eu-west-1")
    assert found == {
        "Training": {"ml.m5.xlarge": 0.257, "ml.g4dn.xlarge": 0.822},
        "Processing": {"ml.m5.xlarge": 0.257},
        "Hosting": {"ml.m5.large": 0.134},  # two products: the higher kept
    }
    assert notes == [
        "Hosting ml.m5.large: two prices (0.128 and 0.134), kept the higher",
        "skipped Processing ml.c5.xlarge: 2 on-demand hourly USD prices, expected 1",
    ]


def test_the_refresh_reads_every_page_of_the_price_list(stubbed: Any) -> None:
    table, _ = fetch_price_table(stubbed, "eu-west-1", today=date(2026, 11, 30))
    assert (table.fetched, table.source) == ("2026-11-30", "AWS Price List API, AmazonSageMaker GetProducts")
    assert table.hourly("Training", "ml.g4dn.xlarge") == 0.822


def test_the_refresh_tool_writes_a_table_the_estimate_reads(stubbed: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "prices"
    lines = refresh_prices.refresh(stubbed, ["eu-west-1"], out)
    assert lines[0].startswith(f"{out}/eu-west-1.json: 4 prices (Hosting 1, Processing 1, Training 2), read ")
    assert lines[1:] == [
        "  note: Hosting ml.m5.large: two prices (0.128 and 0.134), kept the higher",
        "  note: skipped Processing ml.c5.xlarge: 2 on-demand hourly USD prices, expected 1",
    ]
    assert [p.name for p in out.iterdir()] == ["eu-west-1.json"]  # no temp file left
    monkeypatch.setattr(prices, "price_dir", lambda: out)
    table = load_prices("eu-west-1")
    assert isinstance(table, PriceTable) and table.fetched and table.hourly("Processing", "ml.m5.xlarge") == 0.257


def test_the_refresh_tool_with_a_wrong_profile_sends_nothing(
    moto: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AWS_PROFILE", "other")
    assert refresh_prices.main(["--region", "eu-west-1", "--out", str(tmp_path / "prices")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: 1 problem in the AWS guard for profile 'ab' (refused before any request):")
    assert moto.requests == [] and not (tmp_path / "prices").exists()
