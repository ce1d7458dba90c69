"""The benchmark's builder makes timelines `git deploy` itself could have written: fsck accepts
them, and the tool carries on writing to them."""

from __future__ import annotations

import sys
from pathlib import Path

from conftest import Deploy, git

BENCH = Path(__file__).resolve().parent.parent / "bench"


def test_built_timelines_are_sound(tmp_path: Path) -> None:
    sys.path.insert(0, str(BENCH))
    try:
        import build
    finally:
        sys.path.remove(str(BENCH))
    code = build.build_code(tmp_path / "code", 1200)
    assert git(code, "rev-list", "--count", "main") == "1200"
    assert git(code, "describe", "--tags", "main") == "v0.2.0-200-g" + \
        git(code, "rev-parse", "--short=7", "main")
    repo = build.share(code, tmp_path / "app")
    build.build_timeline(repo, "prod", 120, code_commits=50)
    deploy = Deploy(repo)
    assert deploy("fsck").stdout == "prod: 121 changes checked, ok\n"
    status = deploy.json("status")
    assert isinstance(status, list)
    assert status[0]["deployments"] == 120 and status[0]["current"]["number"] == 120
    assert status[0]["current"]["commits"][0]["commit"] == git(repo, "rev-parse", "main")
    deploy("start", "prod")
    deploy("finish", "prod")
    assert deploy("fsck").stdout == "prod: 123 changes checked, ok\n"
