"""A bucket on the moto server, filled by a client of the test's own (not skyops' guard), and what the server saw."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from .conftest import MotoServer

BUCKET = "drone-data"
PREFIX = "visdrone/"


@dataclass
class Bucket:
    """The test's side of the bucket: put objects (plain, multipart, with sha256 metadata) and count GetObject at the server."""

    moto: MotoServer
    client: Any
    name: str = BUCKET

    def put(self, key: str, body: bytes, *, sha256: str | None = None) -> str:
        """PutObject; the ETag (an MD5). `sha256` sets x-amz-meta-sha256 (True-ish '' is not set)."""
        metadata = {"sha256": sha256} if sha256 is not None else {}
        return str(self.client.put_object(Bucket=self.name, Key=key, Body=body, Metadata=metadata)["ETag"]).strip('"')

    def put_multipart(self, key: str, parts: list[bytes], *, sha256: str | None = None) -> str:
        """A multipart upload; the ETag (`<md5 of the parts' md5s>-<parts>`, not the content's MD5)."""
        metadata = {"sha256": sha256} if sha256 is not None else {}
        upload = self.client.create_multipart_upload(Bucket=self.name, Key=key, Metadata=metadata)["UploadId"]
        done = []
        for number, part in enumerate(parts, start=1):
            etag = self.client.upload_part(Bucket=self.name, Key=key, UploadId=upload, PartNumber=number, Body=part)["ETag"]
            done.append({"ETag": etag, "PartNumber": number})
        result = self.client.complete_multipart_upload(Bucket=self.name, Key=key, UploadId=upload, MultipartUpload={"Parts": done})
        return str(result["ETag"]).strip('"')

    def uri(self, prefix: str = PREFIX) -> str:
        return f"s3://{self.name}/{prefix}"

    def forget_requests(self) -> None:
        """Count from here: the test's own puts are not skyops' requests."""
        with self.moto.counter.lock:
            self.moto.counter.requests.clear()
            self.moto.counter.operations.clear()

    def downloads(self) -> list[str]:
        """The keys of every GetObject the server answered since `forget_requests`, in order."""
        return [op.removeprefix(f"GET /{self.name}/") for op in self.moto.operations if op.startswith(f"GET /{self.name}/")]


def make_bucket(moto: MotoServer) -> Bucket:
    import boto3

    client = boto3.client(
        "s3", endpoint_url=moto.url, region_name="eu-west-1", aws_access_key_id="testing-seed", aws_secret_access_key="testing-seed"
    )
    client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    return Bucket(moto, client)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# A small dataset in the layout the ingest step reads (YOLO: images/ + labels/), as S3 keys under PREFIX.
DATASET = {
    "data.yaml": b"names: [car, person]\n",
    "images/a.jpg": b"\xff\xd8 image a",
    "images/b.jpg": b"\xff\xd8 image b",
    "labels/a.txt": b"0 0.5 0.5 0.1 0.1\n",
    "labels/b.txt": b"1 0.2 0.2 0.05 0.1\n",
}
