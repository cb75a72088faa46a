"""Workflow commands: escaping that the runner undoes exactly, and fences that hold."""

from __future__ import annotations

import io

from hypothesis import given
from hypothesis import strategies as st
from tests.action.runner import parse_log

from apr_qa.action.commands import Commands, escape_data, escape_property, format_command

_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=80)


@given(message=_text, title=_text, file=_text)
def test_a_command_round_trips_through_the_runner(message: str, title: str, file: str) -> None:
    line = format_command("error", message, {"file": file or "f", "title": title or "t"})
    assert "\n" not in line and "\r" not in line
    (command,) = parse_log(line)
    assert command.name == "error"
    assert command.message == message
    assert command.properties == {"file": file or "f", "title": title or "t"}


@given(text=_text)
def test_echoed_text_is_never_a_command(text: str) -> None:
    out = io.StringIO()
    Commands(out).echo(text)
    assert parse_log(out.getvalue()) == []


def test_escapes_are_the_runners() -> None:
    assert escape_data("100%\r\nnext") == "100%25%0D%0Anext"
    assert escape_property("a:b,c%") == "a%3Ab%2Cc%25"
    # Unescaped, a comma in a title would forge another property.
    assert parse_log("::error title=a,line=99::x")[0].properties == {"title": "a", "line": "99"}
    (escaped,) = parse_log(format_command("error", "x", {"title": "a,line=99"}))
    assert escaped.properties == {"title": "a,line=99"}


def test_a_fence_token_is_fresh_each_time() -> None:
    out = io.StringIO()
    commands = Commands(out)
    commands.echo("one")
    commands.echo("two")
    starts = [line for line in out.getvalue().splitlines() if line.startswith("::stop-commands::")]
    assert len(starts) == 2 and starts[0] != starts[1]


def test_a_multi_line_secret_masks_each_line() -> None:
    out = io.StringIO()
    Commands(out).mask("line-one\nline-two\n")
    assert [(c.name, c.message) for c in parse_log(out.getvalue())] == [
        ("add-mask", "line-one"),
        ("add-mask", "line-two"),
    ]
