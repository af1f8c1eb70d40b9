"""Every ``ivr`` command's --help shows at least one example (the project's CLI rule)."""

from __future__ import annotations

import click
import pytest

from ivr.cli import root

# Commands of ivr/speech/cli.py, which was being edited by someone else when this test was
# written; remove each entry once its docstring has an "Examples:" block.
PENDING: set[str] = set()


def _walk(cmd: click.Command, path: list[str],
          ctx: click.Context) -> list[tuple[str, click.Command, click.Context]]:
    found = [(" ".join(path), cmd, ctx)]
    if isinstance(cmd, click.Group):
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            if sub is not None:
                found += _walk(sub, [*path, name], click.Context(sub, parent=ctx, info_name=name))
    return found


COMMANDS = _walk(root, ["ivr"], click.Context(root, info_name="ivr"))


def test_walk_finds_the_command_tree() -> None:
    names = {name for name, _, _ in COMMANDS}
    # a walk that stopped at the root would make every other test here vacuous
    assert {"ivr", "ivr campaign plan", "ivr numbers flags import", "ivr simulate"} <= names
    assert len(names) > 40


def test_pending_lists_only_real_commands_without_examples() -> None:
    helps = {name: cmd.get_help(ctx) for name, cmd, ctx in COMMANDS}
    assert helps.keys() >= PENDING, f"not commands any more: {PENDING - helps.keys()}"
    done = {name for name in PENDING if "Example" in helps[name]}
    assert not done, f"these have examples now; remove them from PENDING: {sorted(done)}"


@pytest.mark.parametrize(("name", "cmd", "ctx"),
                         [pytest.param(*c, id=c[0]) for c in COMMANDS if c[0] not in PENDING])
def test_help_has_examples(name: str, cmd: click.Command, ctx: click.Context) -> None:
    text = cmd.get_help(ctx)
    assert "Example" in text, f"`{name} --help` shows no example"
    # the examples are shown as written: click keeps their line breaks only after a \b line
    after = text.split("Example", 1)[1].splitlines()[1:]
    assert after and after[0].strip().startswith(("ivr ", "curl ", "sox ")), \
        f"`{name} --help`: the first example line is {after[:1]} (missing \\b?)"
