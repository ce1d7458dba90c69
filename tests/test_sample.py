"""The sample repository: the same commits on every run, and a history in every status."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import git

ROOT = Path(__file__).resolve().parent.parent
GENERATOR = ROOT / "sample-repo" / "generate.py"


def generate(out: Path) -> Path:
    subprocess.run([sys.executable, str(GENERATOR), "--out", str(out), "--quiet"], check=True,
                   timeout=300)
    return out / "bookshelf"


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return (generate(tmp_path_factory.mktemp("first") / "out"),
            generate(tmp_path_factory.mktemp("second") / "out"))


def refs(repo: Path, *patterns: str) -> str:
    return git(repo, "for-each-ref", "--format=%(refname) %(objectname)", *patterns)


def test_two_runs_give_the_same_commits(two_runs: tuple[Path, Path]) -> None:
    first, second = two_runs
    code = refs(first, "refs/heads", "refs/tags")
    assert code == refs(second, "refs/heads", "refs/tags")
    assert "refs/heads/release" in code and "refs/tags/v1.3.0" in code
    # the server holds the same
    server = first.parent / "server" / "bookshelf.git"
    assert refs(server, "refs/heads", "refs/tags") == code


def test_two_runs_give_the_same_records(two_runs: tuple[Path, Path]) -> None:
    first, second = two_runs
    for target in ("staging", "production"):
        # the trees hold every record: equal trees, equal records (the commits differ only in
        # the id each change carries)
        assert git(first, "rev-parse", f"refs/deployments/{target}^{{tree}}") == \
            git(second, "rev-parse", f"refs/deployments/{target}^{{tree}}")
        assert git(first, "log", "--format=%an %aI %s", f"refs/deployments/{target}") == \
            git(second, "log", "--format=%an %aI %s", f"refs/deployments/{target}")


def listing(repo: Path, target: str) -> list[dict[str, object]]:
    result = subprocess.run(["git", "deploy", "list", target, "-n", "0", "--json"], cwd=repo,
                            capture_output=True, text=True, check=True)
    found = json.loads(result.stdout)
    assert isinstance(found, list)
    return found


def test_the_history_has_every_status(two_runs: tuple[Path, Path]) -> None:
    repo = two_runs[0]
    staging, production = listing(repo, "staging"), listing(repo, "production")
    statuses = {r["status"] for r in staging + production}
    has_sweep = subprocess.run(["git", "deploy", "sweep", "-h"], cwd=repo,
                               capture_output=True).returncode == 0
    expected = {"scheduled", "current", "completed", "failed",
                "hanging" if has_sweep else "deploying"}
    assert expected <= statuses
    # the rollback: production #4 went back to 1.1.0 when 1.2.0 broke
    rollback = next(r for r in production if r["number"] == 4)
    assert rollback["rollback_of"] == 3 and rollback["version"] == "v1.1.0"
    # CI ran the deployments: they link to their jobs
    assert all(r["external_link"] for r in staging if r["status"] in ("current", "failed"))
    # merges name the issues they close
    merges = git(repo, "log", "--merges", "--format=%s", "main")
    assert "Merge branch 'feature/search' (BOOK-7)" in merges.splitlines()
