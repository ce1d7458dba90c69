"""The reading services (src/git_deployments/reading/): the shapes `--json` and the server share,
and one target that cannot be read never hiding the others."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import Deploy, git
from test_store import plant


def test_status_answers_every_target_but_the_one_that_cannot_be_read(repo: Path,
                                                                   deploy: Deploy) -> None:
    for key in ("alpha", "broken", "omega"):
        deploy("target", "create", key)
        deploy("finish", key, "--commit", "app:main:HEAD")
    plant(repo, {"index.yaml": b"a: &b [1]\nc: *b\n"}, "broken")
    before = git(repo, "for-each-ref")
    result = deploy("status", code=1)
    # one clear line for the broken target; the table for the others
    errors = result.stderr.splitlines()
    assert len(errors) == 1 and errors[0].startswith("error: refs/deployments/broken@")
    assert "anchors are not allowed" in errors[0]
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines[1:]] == ["alpha", "omega"]
    answer = json.loads(deploy("status", "--json", code=1).stdout)
    assert [row["target"] for row in answer] == ["alpha", "broken", "omega"]
    assert set(answer[1]) == {"target", "error"} and "anchors" in answer[1]["error"]
    assert answer[0]["current"]["number"] == 1 and answer[2]["current"]["number"] == 1
    assert git(repo, "for-each-ref") == before


def test_a_target_whose_tip_commit_is_missing_is_named(repo: Path, deploy: Deploy) -> None:
    deploy("target", "create", "alpha")
    deploy("target", "create", "lost")
    # a ref to a commit this repository lacks (git itself refuses to write one)
    (repo / ".git" / "refs" / "deployments" / "lost").write_text("1" * 40 + "\n")
    result = deploy("status", "--json", code=1)
    answer = json.loads(result.stdout)
    assert answer[0]["target"] == "alpha" and "error" not in answer[0]
    assert answer[1]["target"] == "lost" and "missing" in answer[1]["error"]
