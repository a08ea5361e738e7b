"""The README's promises that are checkable without training."""

import re

from conftest import REPO


def readme_commands():
    return re.findall(r"^(python3 -m venv .*)$", (REPO / "README.md").read_text(), flags=re.M)


def test_ci_runs_exactly_the_readme_test_command():
    cmds = readme_commands()
    test_cmd = [c for c in cmds if "pytest" in c]
    assert len(test_cmd) == 1, cmds
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert test_cmd[0] in ci
    workflow = (REPO / ".github" / "workflows" / "ci.yml").read_text()
    assert test_cmd[0] in workflow


def test_readme_train_command_runs_the_default_train_py():
    cmds = readme_commands()
    assert any(c.endswith(".venv/bin/python train.py") for c in cmds), cmds


def test_every_config_group_named_in_the_readme_exists():
    text = (REPO / "README.md").read_text()
    for group, names in re.findall(r"`(dataset|model|loss|optim|trainer|logger)` \(([^)]*)\)", text):
        for name in re.split(r",\s*", names):
            assert (REPO / "conf" / group / f"{name}.yaml").is_file(), f"conf/{group}/{name}.yaml"
