"""`segue protect --engine ray`: the local engine's job on Ray Data, byte for byte; an S3
round trip against a real S3 API on the loopback address (moto's server); a worker
killed mid-job."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from segue_cli.cli.app import app
from segue_cli.protect.config import ProtectConfig
from segue_cli.protect import protect
from test_protect import face, json_lines, runner, tree_digest

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ray_instance():
    """One local Ray for the module (starting one costs 5-10 s); the engine joins it."""
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    yield
    ray.shutdown()


def people(root: Path, per_person: int = 3) -> Path:
    for person, name in enumerate(("alice", "bob")):
        (root / name).mkdir(parents=True)
        for index in range(per_person):
            face(10 * person + index, (56 + 8 * index, 48)).save(root / name / f"{index}.png")
    (root / "bob" / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    return root


def results_by_input(events: list) -> dict[str, tuple]:
    return {Path(str(r.source)).name + Path(str(r.source)).parent.name: (r.status, r.reason, r.code, r.size)
            for kind, r in events if kind == "file"}


def test_ray_engine_writes_what_the_local_engine_writes(tmp_path, ray_instance):
    root = people(tmp_path / "photos")
    local_events: list = []
    ray_events: list = []
    local = protect(ProtectConfig(input=root, out=tmp_path / "local", by_folder=True, workers=2),
                    lambda event: local_events.append((event.name, event.data)))
    on_ray = protect(ProtectConfig(input=root, out=tmp_path / "ray", by_folder=True, engine="ray", actors=2,
                                   engine_progress=False), lambda event: ray_events.append((event.name, event.data)))
    assert (local.written, local.failed) == (on_ray.written, on_ray.failed) == (6, 1)
    # Same names, same bytes, and the same settings record (settings and input fingerprints).
    assert tree_digest(tmp_path / "ray") == tree_digest(tmp_path / "local")
    assert results_by_input(ray_events) == results_by_input(local_events)
    broken = next(r for kind, r in ray_events if kind == "file" and r.status == "failed")
    assert broken.source == root / "bob" / "broken.jpg" and "not a readable image" in broken.reason
    again = protect(ProtectConfig(input=root, out=tmp_path / "ray", by_folder=True, engine="ray", engine_progress=False))
    assert (again.written, again.skipped) == (0, 6)


def test_cli_engine_ray_reports_like_the_local_engine(tmp_path, ray_instance):
    root = people(tmp_path / "photos", per_person=1)
    result = runner.invoke(app, ["protect", str(root), "--out", str(tmp_path / "out"), "--by-folder",
                                 "--engine", "ray", "--actors", "1", "--json"])
    assert result.exit_code == 1, result.output  # the broken file
    lines = json_lines(result.stdout)
    statuses = sorted((Path(line["input"]).name, line["status"]) for line in lines[:-1])
    assert statuses == [("0.png", "written"), ("0.png", "written"), ("broken.jpg", "failed")]
    assert lines[-1]["type"] == "summary" and lines[-1]["written"] == 2 and lines[-1]["failed"] == 1
    assert "broken.jpg" in result.stderr


def test_a_killed_worker_loses_nothing(tmp_path, ray_instance):
    root = tmp_path / "photos"
    root.mkdir()
    for index in range(24):
        face(index, (64, 64)).save(root / f"{index:02d}.png")
    killed: list[int] = []

    def kill_one_worker(event) -> None:
        # After the first result the job is under way: kill one protecting actor outright.
        if event.name == "file" and not killed:
            for pid in os.listdir("/proc"):
                try:
                    command = Path(f"/proc/{pid}/cmdline").read_bytes()
                except OSError:
                    continue
                if b"ray::MapWorker(MapBatches(BoundProtectWorker))" in command:
                    os.kill(int(pid), signal.SIGKILL)
                    killed.append(int(pid))
                    break

    summary = protect(ProtectConfig(input=root, out=tmp_path / "ray", identity="ada", engine="ray", actors=2,
                                    batch_size=1, engine_progress=False), kill_one_worker)
    assert killed, "no worker process was found to kill"
    assert (summary.written, summary.failed) == (24, 0)
    protect(ProtectConfig(input=root, out=tmp_path / "local", identity="ada", workers=2))
    assert tree_digest(tmp_path / "ray") == tree_digest(tmp_path / "local")  # no partial or temp file left
    again = protect(ProtectConfig(input=root, out=tmp_path / "ray", identity="ada", engine="ray", engine_progress=False))
    assert (again.written, again.skipped) == (0, 24)


def test_engine_options_are_checked_before_any_work(tmp_path):
    root = people(tmp_path / "photos", per_person=1)
    for args, words in ((["--actors", "2"], "--engine ray"), (["--out", "s3://bucket/x"], "add --engine ray"),
                        (["--engine", "spark"], "unknown engine"),
                        (["--engine", "ray", "--ray-address", "127.0.0.1:1"], "no Ray cluster answers")):
        result = runner.invoke(app, ["protect", str(root), *args])
        assert result.exit_code == 2, result.output
        assert words in result.stderr, result.stderr
    assert not (tmp_path / "photos-protected").exists()


def test_ray_engine_cloaks_as_the_local_engine_does(tmp_path, ray_instance, webface10):
    """--cloak runs in each actor (its own copy of dlib's twin) and writes the same bytes."""
    import shutil

    from segue_cli.photo.cloak import CloakConfig

    root = tmp_path / "photos" / "ada"
    root.mkdir(parents=True)
    for source in sorted((webface10 / "train" / "5").glob("*.jpg"))[:2]:
        shutil.copy(source, root / source.name)
    cloak = CloakConfig(steps=3)
    local = protect(ProtectConfig(input=root.parent, out=tmp_path / "local", by_folder=True, cloak=cloak))
    on_ray = protect(ProtectConfig(input=root.parent, out=tmp_path / "ray", by_folder=True, cloak=cloak, engine="ray",
                                   actors=2, engine_progress=False))
    assert (local.written, on_ray.written) == (2, 2)
    assert tree_digest(tmp_path / "ray") == tree_digest(tmp_path / "local")
    assert (local.cloaked, on_ray.cloaked) == (2, 2) and local.cloak_no_face == on_ray.cloak_no_face


def test_quiet_means_quiet_with_the_ray_engine(tmp_path):
    """Ray's own notices (its auth line, its C++ core's log, Ray Data's warnings) are muted
    under --quiet; a failed file is still named. In a child process: only there does what
    Ray writes to file descriptor 2 show."""
    import subprocess
    import sys

    root = people(tmp_path / "photos", per_person=1)
    done = subprocess.run([sys.executable, "-m", "segue_cli", "protect", str(root), "--by-folder", "--engine", "ray",
                           "--quiet", "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=600)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [f"failed: {root / 'bob' / 'broken.jpg'}: not a readable image "
                                                "(UnidentifiedImageError) (remove or replace the file)"]
