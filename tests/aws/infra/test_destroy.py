"""`skyops infra destroy` against the moto server: a dry run unless --yes; only skyops' own stacks and tagged buckets
(emptied of every version and delete marker first); foreign and untagged buckets untouched; every decision logged."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.aws.conftest import MotoServer

from .conftest import DEPLOY, Cli, admin
from .template import ACCOUNT, REGION

pytestmark = pytest.mark.usefixtures("cfn_outputs")

BUCKET = f"skyops-dev-{ACCOUNT}-{REGION}"
OWNED = "Project=skyops, Environment=dev, ManagedBy=skyops-dev"
FOREIGN = "skyops-dev-shared-datasets"  # another team's bucket, named alike
UNTAGGED = "skyops-dev-scratch"  # made by hand, no tags
COST_TAGGED = "skyops-dev-labelling"  # made by hand and tagged for the cost reports, not by the stack


def _log(project: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (project / "infra" / "actions.jsonl").read_text().splitlines()]


def _neighbours(s3: Any) -> None:
    """Buckets named like the environment's that are not the stack's, each holding an object."""
    where = {"LocationConstraint": REGION}
    for name in (FOREIGN, UNTAGGED, COST_TAGGED):
        s3.create_bucket(Bucket=name, CreateBucketConfiguration=where)
        s3.put_object(Bucket=name, Key="keep.txt", Body=b"not skyops'")
    s3.put_bucket_tagging(
        Bucket=FOREIGN, Tagging={"TagSet": [{"Key": "Project", "Value": "datasets"}, {"Key": "Environment", "Value": "dev"}]}
    )
    s3.put_bucket_tagging(
        Bucket=COST_TAGGED, Tagging={"TagSet": [{"Key": "Project", "Value": "skyops"}, {"Key": "Environment", "Value": "dev"}]}
    )


def test_without_yes_destroy_deletes_nothing_and_logs_what_it_would_do(cli: Cli, moto: MotoServer, project: Path) -> None:
    assert cli(*DEPLOY)[0] == 0
    s3 = admin(moto, "s3")
    _neighbours(s3)
    log_size = len(_log(project))
    code, out, err = cli("infra", "destroy")
    assert code == 0, err
    assert out.splitlines()[1:] == [
        f"delete-stack             stack skyops-dev: tagged {OWNED} (CREATE_COMPLETE)",
        f"empty-and-delete-bucket  bucket {BUCKET}: resource ArtifactBucket of stack skyops-dev, kept by its DeletionPolicy; tagged {OWNED}",
        f"refuse                   bucket {COST_TAGGED}: named like the dev artifact bucket (skyops-dev-...); no ManagedBy tag: "
        f"not skyops' dev environment (expected {OWNED})",
        f"refuse                   bucket {UNTAGGED}: named like the dev artifact bucket (skyops-dev-...); it has no tags; "
        f"skyops deletes only what is tagged {OWNED}",
        f"refuse                   bucket {FOREIGN}: named like the dev artifact bucket (skyops-dev-...); Project='datasets', no ManagedBy tag: "
        f"not skyops' dev environment (expected {OWNED})",
        f"dry run: nothing was deleted (decisions logged in {project / 'infra' / 'actions.jsonl'}); "
        "delete with: skyops infra destroy --env dev --yes",
    ]
    assert admin(moto, "cloudformation").describe_stacks(StackName="skyops-dev")["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"
    assert {b["Name"] for b in s3.list_buckets()["Buckets"]} == {BUCKET, FOREIGN, UNTAGGED, COST_TAGGED}
    dry = _log(project)[log_size:]
    assert [(r["command"], r["action"], r["outcome"]) for r in dry] == [
        ("destroy --dry-run", "delete-stack", "planned (dry run)"),
        ("destroy --dry-run", "empty-and-delete-bucket", "planned (dry run)"),
        *[("destroy --dry-run", "refuse", "refused")] * 3,
    ]


def test_destroy_deletes_its_stack_and_its_emptied_versioned_bucket_and_nothing_else(cli: Cli, moto: MotoServer, project: Path) -> None:
    assert cli(*DEPLOY)[0] == 0
    s3 = admin(moto, "s3")
    # The template enables versioning; moto's CloudFormation applies only a bucket's encryption and tags.
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket=BUCKET, Key="data/a.txt", Body=b"1")
    s3.put_object(Bucket=BUCKET, Key="data/a.txt", Body=b"2")
    s3.delete_object(Bucket=BUCKET, Key="data/a.txt")  # a delete marker over two versions
    s3.put_object(Bucket=BUCKET, Key="skyops/code/x.tar.gz", Body=b"3")
    _neighbours(s3)
    log_size = len(_log(project))

    code, out, err = cli("infra", "destroy", "--yes")
    assert code == 0, err
    assert out.splitlines()[-1] == f"done: 2 deleted, 3 refused and left untouched; log: {project / 'infra' / 'actions.jsonl'}"
    cloudformation = admin(moto, "cloudformation")
    assert [s["StackStatus"] for s in cloudformation.list_stacks()["StackSummaries"] if s["StackName"] == "skyops-dev"] == [
        "DELETE_COMPLETE"
    ]
    assert {b["Name"] for b in s3.list_buckets()["Buckets"]} == {FOREIGN, UNTAGGED, COST_TAGGED}
    for name in (FOREIGN, UNTAGGED, COST_TAGGED):
        assert s3.get_object(Bucket=name, Key="keep.txt")["Body"].read() == b"not skyops'"
    roles = {r["RoleName"] for r in admin(moto, "iam").list_roles()["Roles"]}
    assert not roles & {"skyops-dev-pipeline", "skyops-dev-data-scientist", "skyops-dev-ml-engineer"}
    records = _log(project)[log_size:]
    assert [(r["action"], r["resource"], r["outcome"]) for r in records] == [
        ("delete-stack", "stack skyops-dev", "started"),
        ("delete-stack", "stack skyops-dev", "done"),
        ("empty-and-delete-bucket", f"bucket {BUCKET}", "started"),
        ("empty-and-delete-bucket", f"bucket {BUCKET}", "done"),
        ("refuse", f"bucket {COST_TAGGED}", "refused"),
        ("refuse", f"bucket {UNTAGGED}", "refused"),
        ("refuse", f"bucket {FOREIGN}", "refused"),
    ]
    assert records[3]["reason"] == "4 object versions and delete markers removed"
    assert records[5]["reason"].endswith(f"it has no tags; skyops deletes only what is tagged {OWNED}")
    assert all((r["profile"], r["region"], r["environment"]) == ("ab", REGION, "dev") for r in records)
    assert not (project / "infra" / "dev.json").exists()

    code, out, err = cli("infra", "destroy", "--yes")  # again: only the refusals are left
    assert code == 0 and out.splitlines()[-1].startswith("done: 0 deleted, 3 refused"), err


def test_a_stack_of_its_name_without_its_tags_is_refused(cli: Cli, moto: MotoServer, project: Path) -> None:
    foreign = "Resources:\n  Topic:\n    Type: AWS::SNS::Topic\n"
    admin(moto, "cloudformation").create_stack(StackName="skyops-dev-studio", TemplateBody=foreign)
    code, out, err = cli("infra", "destroy", "--yes")
    assert code == 0, err
    assert out.splitlines()[1] == (
        "refuse                   stack skyops-dev-studio: it has no tags; skyops deletes only what is tagged "
        "Project=skyops, Environment=dev, ManagedBy=skyops-dev-studio"
    )
    assert admin(moto, "cloudformation").describe_stacks(StackName="skyops-dev-studio")["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"
