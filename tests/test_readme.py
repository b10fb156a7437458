"""README.md speaks to a user on a fresh machine: its commands run as written after its first one."""

import re

from helpers import ROOT

SETUP = "python3 -m venv .venv && .venv/bin/pip install -r requirements.txt"


def test_the_readme_opens_with_the_two_commands_that_set_up():
    first_block = ROOT.joinpath("README.md").read_text().split("```bash\n", 1)[1].split("```", 1)[0]
    commands = [line for line in first_block.splitlines() if line and not line.startswith("#")]
    assert len(commands) == 2
    assert all(c.startswith(SETUP + " && .venv/bin/python ") for c in commands)


def test_every_later_command_runs_the_projects_environment():
    """A bare `python` after the set-up command is the system's Python, without the project's
    packages: every command names .venv/bin/python. The tables written from results files quote
    the command each file recorded, as it was typed; they are records, not instructions."""
    from experiments.docs_check import BLOCK

    readme = BLOCK.sub("", ROOT.joinpath("README.md").read_text())
    bare = [
        line
        for line in readme.splitlines()
        if re.search(r"(?<![\w/.-])python3? (?!-m venv)", line) and SETUP not in line
    ]
    assert bare == []


def test_the_readme_stays_short_and_the_guide_lists_every_setting_as_declared():
    from keras_models.cli import settings_markdown

    assert len(ROOT.joinpath("README.md").read_text().splitlines()) <= 250
    guide = ROOT.joinpath("docs", "GUIDE.md").read_text()
    table = guide.split("<!-- settings table: keras_models.cli.settings_markdown() -->\n", 1)[1]
    assert table.split("<!-- end of the settings table -->", 1)[0] == settings_markdown()
