"""`segue protect s3://... --engine ray`: an S3 round trip against a real S3 API served on
the loopback address (moto's server mode), never a mock of the client. Its own module:
Ray starts here from the test's environment, so its workers see the AWS_* variables."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest

from segue_cli.protect.config import ProtectConfig
from segue_cli.protect import protect
from test_protect import tree_digest
from test_protect_ray import people

pytest.importorskip("ray")
pytestmark = pytest.mark.slow


@pytest.fixture
def s3_server(monkeypatch):
    """moto's S3 server on 127.0.0.1 (a real HTTP S3 API, not a mock of the client)."""
    moto_server = pytest.importorskip("moto.server")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    # moto keeps its buckets in the process, across servers: start every test empty.
    urllib.request.urlopen(urllib.request.Request(f"http://{host}:{port}/moto-api/reset", method="POST"), timeout=30)
    # The local Ray's workers inherit the driver's environment, and with it these.
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                        ("AWS_DEFAULT_REGION", "us-east-1"), ("AWS_ENDPOINT_URL", f"http://{host}:{port}")):
        monkeypatch.setenv(name, value)
    yield f"http://{host}:{port}"
    server.stop()


def test_s3_round_trip(tmp_path, s3_server):
    import boto3

    root = people(tmp_path / "photos")
    (root / "alice" / "._0.png").write_bytes(b"macOS metadata")
    s3 = boto3.client("s3", endpoint_url=s3_server)
    s3.create_bucket(Bucket="uploads")
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        s3.upload_file(str(path), "uploads", f"photos/{path.relative_to(root).as_posix()}")
    # An earlier run's output inside INPUT (its marker beside it) is left out, as locally.
    s3.put_object(Bucket="uploads", Key="photos/old-protected/.segue-output", Body=b"marker")
    s3.upload_file(str(root / "alice" / "0.png"), "uploads", "photos/old-protected/0.png")
    # Ray starts its own local instance here (no fixture), so workers get the AWS_* variables.
    summary = protect(ProtectConfig(input="s3://uploads/photos", out="s3://uploads/protected", by_folder=True,
                                    engine="ray", actors=2, engine_progress=False))
    assert (summary.written, summary.failed) == (6, 1)
    assert any("left out 1 output folder" in w and "old-protected" in w for w in summary.warnings), summary.warnings
    protect(ProtectConfig(input=root, out=tmp_path / "local", by_folder=True, workers=2))
    listed = s3.list_objects_v2(Bucket="uploads", Prefix="protected/")["Contents"]
    keys = sorted(item["Key"].removeprefix("protected/") for item in listed)
    local_files = tree_digest(tmp_path / "local")
    assert [k for k in keys if k.endswith(".png")] == sorted(k for k in local_files if k.endswith(".png"))
    for key in keys:
        if key.endswith(".png"):
            body = s3.get_object(Bucket="uploads", Key=f"protected/{key}")["Body"].read()
            assert body == (tmp_path / "local" / key).read_bytes(), key
    assert ".segue-protect.json" in keys
    again = protect(ProtectConfig(input="s3://uploads/photos", out="s3://uploads/protected", by_folder=True,
                                  engine="ray", engine_progress=False))
    assert (again.written, again.skipped, again.failed) == (0, 6, 1)
    with pytest.raises(Exception, match="other settings"):
        protect(ProtectConfig(input="s3://uploads/photos", out="s3://uploads/protected", identity="someone else",
                              engine="ray", engine_progress=False))




def test_the_readme_ray_pipeline_runs_as_printed(tmp_path, s3_server):
    """The README's hand-built Ray Data pipeline, run exactly as printed against the loopback S3."""
    import re

    import boto3
    import ray

    from segue_cli import Protector

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    start = readme.index("## Large batches")
    section = readme[start:readme.index("\n## ", start + 1)]  # up to the next section
    (code,) = re.findall(r"```python\n(.*?)```", section, re.S)
    root = people(tmp_path / "photos", per_person=2)
    (root / "bob" / "broken.jpg").unlink()
    s3 = boto3.client("s3", endpoint_url=s3_server)
    s3.create_bucket(Bucket="uploads")
    for path in sorted(p for p in root.rglob("*.png")):
        s3.upload_file(str(path), "uploads", f"photos/{path.relative_to(root).as_posix()}")
    try:
        exec(compile(code, "README.md", "exec"), {})
    finally:
        ray.shutdown()
    protector = Protector()
    for path in sorted(root.rglob("*.png")):
        key = f"protected/{path.relative_to(root).as_posix()}"
        body = s3.get_object(Bucket="uploads", Key=key)["Body"].read()
        assert body == protector.protect(path.read_bytes(), identity=path.parent.name, image_format="png"), key
