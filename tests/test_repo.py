"""The README's promises that are checkable without training."""

import re
import unicodedata

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


def heading_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading: its text lower-cased, with everything but letters, marks,
    digits, spaces, hyphens and underscores dropped, and spaces made hyphens (github-slugger)."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())  # a link keeps its text
    kept = "".join(c for c in text if c in " -_" or unicodedata.category(c)[0] in "LMN")
    return kept.replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    in_code = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and (m := re.match(r"#{1,6} (.*)", line)):
            slug = heading_anchor(m.group(1))
            n = seen.get(slug, 0)
            seen[slug] = n + 1
            out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def test_heading_anchor_follows_github():
    assert heading_anchor("A noise tail (seeds 102–109; fresh 140–147): not adopted") == (
        "a-noise-tail-seeds-102109-fresh-140147-not-adopted")
    assert heading_anchor("The paper's setup in ganforge (`experiment=pacgan_toy`)") == (
        "the-papers-setup-in-ganforge-experimentpacgan_toy")
    assert anchors("# A\n```\n# not a heading\n```\n## A\n") == {"a", "a-1"}


def test_every_relative_link_in_the_docs_resolves():
    """Every link from the README or a page under docs/ to a file of the repository names one that exists,
    and every #anchor one of that page's headings."""
    broken = []
    for page in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
                continue
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            if not file.exists() or REPO not in file.parents:  # ../shared exists here, not for a reader of the repo
                broken.append(f"{page.name}: {target} (no such file in the repository)")
            elif anchor and file.suffix == ".md" and anchor not in anchors(file.read_text()):
                broken.append(f"{page.name}: {target} (no such heading)")
    assert not broken, broken
