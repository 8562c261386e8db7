"""Small named fixtures of the AWS tests: AWS config files in tmp_path, a real moto server that counts requests,
and a TCP listener that counts every connection (standing in for the instance metadata service, container
credentials and any endpoint a request could be sent to).

No test reads the real ~/.aws (HOME points into tmp_path) or reaches AWS (every client goes to 127.0.0.1).
"""

from __future__ import annotations

import os
import shlex
import socket
import sys
import threading
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

# The profiles every test sees. ab: the one skyops uses; the others each lack one thing.
CONFIG = """\
[profile ab]
region = eu-west-1

[profile other]
region = us-east-1

[profile noregion]

[profile nocreds]
region = eu-west-1

[profile partial]
region = eu-west-1

[profile expired]
region = eu-west-1
credential_process = {expired}

[profile fresh]
region = eu-west-1
credential_process = {fresh}
"""
CREDENTIALS = """\
[ab]
aws_access_key_id = testing-ab
aws_secret_access_key = testing-ab

[other]
aws_access_key_id = testing-other
aws_secret_access_key = testing-other

[noregion]
aws_access_key_id = testing
aws_secret_access_key = testing

[partial]
aws_access_key_id = testing
"""
# A credential process prints temporary credentials with the expiry given as its argument.
CREDENTIAL_PROCESS = """\
import json, sys
print(json.dumps({"Version": 1, "AccessKeyId": "AKIDTEMP", "SecretAccessKey": "s", "SessionToken": "t", "Expiration": sys.argv[1]}))
"""
CLEARED_ENV = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
    "AWS_EC2_METADATA_SERVICE_ENDPOINT",
    "AWS_DEFAULTS_MODE",
    "SKYOPS_ALLOW_ENDPOINT_URL",
    "SKYOPS_AWS_PROFILE",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "http_proxy",
    "https_proxy",
)


@dataclass(frozen=True)
class AwsFiles:
    config: Path
    credentials: Path
    home: Path


@pytest.fixture
def aws_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AwsFiles:
    """Config and credentials files defining ab, other, noregion, nocreds, partial, expired and fresh; a clean env."""
    process = tmp_path / "credential_process.py"
    process.write_text(CREDENTIAL_PROCESS)
    command = f"{shlex.quote(sys.executable)} {shlex.quote(str(process))}"
    files = AwsFiles(config=tmp_path / "aws-config", credentials=tmp_path / "aws-credentials", home=tmp_path / "home")
    files.config.write_text(CONFIG.format(expired=f"{command} 2001-01-01T00:00:00Z", fresh=f"{command} 2999-01-01T00:00:00Z"))
    files.credentials.write_text(CREDENTIALS)
    files.home.mkdir()
    for name in [*CLEARED_ENV, *(n for n in os.environ if n.startswith("AWS_ENDPOINT_URL_"))]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(files.home))  # ~/.aws is tmp_path/home/.aws: never the real one
    monkeypatch.setenv("AWS_CONFIG_FILE", str(files.config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(files.credentials))
    monkeypatch.setenv("BOTO_CONFIG", str(tmp_path / "no-boto-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    return files


@dataclass
class CountingApp:
    """A WSGI middleware that keeps 'METHOD host/path' of every AWS request (not moto's own /moto-api/), and its
    operation: the JSON protocols' X-Amz-Target without the service prefix ('CreateEndpoint'), the query protocol's
    Action ('CreateChangeSet', read from the form body, which is handed on unchanged), else 'METHOD path'."""

    app: Callable[..., Any]
    requests: list[str] = field(default_factory=list)
    operations: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path = environ.get("PATH_INFO", "")
        if not path.startswith("/moto-api/"):
            target = environ.get("HTTP_X_AMZ_TARGET", "")
            operation = target.rpartition(".")[2] if target else _query_action(environ) or f"{environ['REQUEST_METHOD']} {path}"
            with self.lock:
                self.requests.append(f"{environ['REQUEST_METHOD']} {environ.get('HTTP_HOST', '')}{path}")
                self.operations.append(operation)
        return self.app(environ, start_response)


def _query_action(environ: dict[str, Any]) -> str:
    """The Action of a query-protocol request (a form body); the body is put back for the app to read."""
    import io
    from urllib.parse import parse_qs

    if not environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
        return ""
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    environ["wsgi.input"] = io.BytesIO(body)
    return parse_qs(body.decode("utf-8", "replace")).get("Action", [""])[0]


@dataclass
class MotoServer:
    url: str
    counter: CountingApp

    @property
    def requests(self) -> list[str]:
        return list(self.counter.requests)

    @property
    def operations(self) -> list[str]:
        """The operation of every request so far, in order: ['ListModelPackages', 'DescribeEndpoint', ...]."""
        return list(self.counter.operations)

    def reset(self) -> None:
        """Forget every resource (moto's reset endpoint) and every counted request."""
        urllib.request.urlopen(urllib.request.Request(f"{self.url}/moto-api/reset", method="POST"), timeout=10).close()
        with self.counter.lock:
            self.counter.requests.clear()
            self.counter.operations.clear()


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """A real moto server on 127.0.0.1 (free port) in a thread, its WSGI app wrapped to count requests."""
    from moto.server import ThreadedMotoServer  # heavy: only the AWS tests need it

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    # ThreadedMotoServer keeps its werkzeug server private; its `app` attribute is werkzeug's public one.
    wsgi_server = server._server
    assert wsgi_server is not None and hasattr(wsgi_server, "app"), "moto's ThreadedMotoServer changed: find its WSGI app again"
    counter = CountingApp(wsgi_server.app)
    wsgi_server.app = counter
    host, port = server.get_host_and_port()
    yield MotoServer(url=f"http://{host}:{port}", counter=counter)
    server.stop()


@pytest.fixture
def moto(moto_server: MotoServer, aws_files: AwsFiles, monkeypatch: pytest.MonkeyPatch) -> MotoServer:
    """The moto server, emptied, with every client pointed at it: botocore's $AWS_ENDPOINT_URL, allowed for this test."""
    moto_server.reset()
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.url)
    monkeypatch.setenv("SKYOPS_ALLOW_ENDPOINT_URL", moto_server.url)
    return moto_server


SENTINEL = b"skyops-listener-sentinel"


class CountingListener:
    """A TCP listener on 127.0.0.1 that keeps the first line of every connection, then closes it.

    `connections()` first connects a sentinel of its own and waits until the listener has taken it: the
    kernel hands connections over in the order they arrived, so every earlier one has been counted.
    """

    def __init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.port: int = self._server.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._seen: list[str] = []
        self._sentinels = threading.Semaphore(0)
        self._thread = threading.Thread(target=self._serve, name="counting-listener", daemon=True)
        self._thread.start()

    def connections(self) -> list[str]:
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as probe:
            probe.sendall(SENTINEL + b"\n")
            assert self._sentinels.acquire(timeout=10), "the counting listener stopped accepting connections"
        return list(self._seen)

    def close(self) -> None:
        self._server.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self._server.close()
        self._thread.join(timeout=10)

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self._server.accept()
            except OSError:  # closed by close()
                return
            with connection:
                connection.settimeout(5)
                try:
                    first = connection.recv(200).split(b"\n")[0].strip()
                except OSError:
                    first = b""
            if first == SENTINEL:
                self._sentinels.release()
            else:
                self._seen.append(first.decode("latin-1") or "(connected, sent nothing)")


@pytest.fixture
def listener(aws_files: AwsFiles, monkeypatch: pytest.MonkeyPatch) -> Iterator[CountingListener]:
    """A counting listener as the instance metadata service and the container credentials endpoint.

    $AWS_EC2_METADATA_DISABLED is unset: nothing but the guard keeps requests from reaching it.
    """
    counter = CountingListener()
    monkeypatch.delenv("AWS_EC2_METADATA_DISABLED", raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", counter.url + "/")
    monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", counter.url + "/container-credentials")
    monkeypatch.setenv("AWS_METADATA_SERVICE_NUM_ATTEMPTS", "1")
    yield counter
    counter.close()


# ---- SageMaker endpoints: every request checked against botocore, and the UpdateEndpoint moto lacks ----------


@dataclass
class CheckedRequests:
    """Every request the guard's clients send, as botocore's `before-parameter-build` hands it over, and what
    botocore's request shape of its operation finds wrong with it: types and required members (ParamValidator)
    and each value's length, range, pattern and enum (tests/sagemaker/constraints.py). moto takes much that
    AWS would refuse, so a request moto accepted is not yet a valid one."""

    sent: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def __call__(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        import copy

        from botocore.validate import ParamValidator

        from tests.sagemaker.constraints import constraint_problems

        self.sent.append((model.name, copy.deepcopy(params)))
        report = ParamValidator().validate(params, model.input_shape)
        if report.has_errors():
            self.problems.append(f"{model.name}: {report.generate_report()}")
        self.problems += [f"{model.name}: {problem}" for problem in constraint_problems(params, model.input_shape, "", {})]

    def of(self, operation: str) -> list[dict[str, Any]]:
        """The requests of `operation` sent so far, in order."""
        return [params for name, params in self.sent if name == operation]


@pytest.fixture
def checked(moto: MotoServer) -> CheckedRequests:
    """The checks every endpoint test's requests go through (the `guard` fixture registers them)."""
    return CheckedRequests()


@pytest.fixture
def guard(moto: MotoServer, checked: CheckedRequests) -> Any:
    """An AwsGuard of profile ab on the moto server whose clients report every request to `checked`."""
    from skyops.aws.session import AwsGuard

    guard = AwsGuard()
    guard.session().events.register("before-parameter-build", checked)  # clients copy the session's handlers when made
    return guard


@dataclass
class EndpointUpdates:
    """UpdateEndpoint on the moto server, which moto 5.2.5 does not implement: the requests received, and what
    SageMaker's guardrails decide. Without `roll_back` the endpoint moves to the new config, as after a blue/green
    deployment that baked; with it the endpoint keeps its config and gets a FailureReason, as after an alarm."""

    received: list[dict[str, Any]] = field(default_factory=list)
    roll_back: bool = False


ROLLED_BACK = "Deployment rolled back: alarm drone-detector-production-invocation-5xx-errors went into ALARM during the canary"


@pytest.fixture
def updates(moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> EndpointUpdates:
    """UpdateEndpoint added to moto's SageMaker (served by the same in-process server), for this test only."""
    import json

    from moto.core.responses import ActionResult
    from moto.sagemaker.responses import SageMakerResponse

    fake = EndpointUpdates()

    def update_endpoint(self: Any) -> Any:
        request = json.loads(self.body)
        fake.received.append(request)
        backend = self.sagemaker_backend
        backend.describe_endpoint(request["EndpointName"])  # moto's ValidationError when there is none
        config = backend.describe_endpoint_config(request["EndpointConfigName"])
        endpoint = backend.endpoints[request["EndpointName"]]
        if fake.roll_back:
            endpoint.failure_reason = ROLLED_BACK
        else:
            endpoint.endpoint_config_name = request["EndpointConfigName"]
            endpoint.production_variants = endpoint._process_production_variants(config["ProductionVariants"])
            endpoint.data_capture_config = config["DataCaptureConfig"]
        return ActionResult({"EndpointArn": endpoint.arn})

    monkeypatch.setattr(SageMakerResponse, "update_endpoint", update_endpoint, raising=False)
    return fake


@pytest.fixture
def world(moto: MotoServer, guard: Any, checked: CheckedRequests, updates: EndpointUpdates, tmp_path: Path) -> Any:
    """Package group drone-detector behind the governed API (alice ml-engineer, bob data-scientist, audit log in tmp_path)
    and its endpoint deployment, every request checked (`checked`), UpdateEndpoint on moto (`updates`): endpoint_world.World."""
    from .endpoint_world import make_world

    return make_world(moto, guard, checked, tmp_path)


@dataclass
class Faults:
    """AWS failing on purpose: `fail(Response class, method)` makes that operation of the moto server answer with
    an AWS error (400, JSON `__type`) for the rest of the test, or until `heal()`; `count` says how often it did."""

    monkeypatch: pytest.MonkeyPatch
    count: int = 0

    def fail(self, responses: type, method: str, code: str = "ResourceLimitExceeded", message: str = "account limit reached") -> None:
        from moto.core.exceptions import JsonRESTError

        def refuse(_: Any) -> Any:
            self.count += 1
            raise JsonRESTError(code, message)

        self.monkeypatch.setattr(responses, method, refuse)

    def heal(self) -> None:
        self.monkeypatch.undo()


@pytest.fixture
def faults(moto: MotoServer) -> Iterator[Faults]:
    """Operations of the moto server made to fail (see Faults); every fault is removed after the test."""
    patcher = pytest.MonkeyPatch()
    yield Faults(patcher)
    patcher.undo()
