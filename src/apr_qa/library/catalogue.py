"""The shipped playbook templates: quick, ci, mvp, full.

Each template is a YAML playbook in this package (``templates/NAME.playbook.yaml``),
documented at its top in comments: its first comment line is the one-line
summary ``apr-qa templates`` prints; the rest says what it costs and what it
proves. A template names a placeholder model (``your-org/your-model``) and no
explicit scenarios: ``apr-qa init`` fills in the model, its scenarios in the
model's prompt form, and thresholds for its size. The top-level ``playbooks/templates``
of the repository is a link to this folder, so there is one copy.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable

from apr_qa.errors import UsageError

__all__ = ["PLACEHOLDER_MODEL", "TEMPLATE_NAMES", "Template", "get_template", "templates"]

TEMPLATE_NAMES: tuple[str, ...] = ("quick", "ci", "mvp", "full")
"""From cheapest to most complete."""
PLACEHOLDER_MODEL = "your-org/your-model"
_SUFFIX = ".playbook.yaml"


@dataclass(frozen=True)
class Template:
    """One shipped template: its name, text and header comment."""

    name: str
    text: str

    @property
    def header(self) -> tuple[str, ...]:
        """The comment lines at the top, without their ``#``."""
        lines: list[str] = []
        for line in self.text.splitlines():
            if not line.startswith("#"):
                break
            lines.append(line[1:].removeprefix(" "))
        return tuple(lines)

    @property
    def summary(self) -> str:
        """The first header line: what the template is for, in one line."""
        return self.header[0] if self.header else ""


def _folder() -> Traversable:
    return resources.files("apr_qa.library").joinpath("templates")


def get_template(name: str) -> Template:
    """The shipped template ``name``; ``UsageError`` listing the names for any other."""
    if name not in TEMPLATE_NAMES:
        raise UsageError(f"no template {name!r}; the templates are {', '.join(TEMPLATE_NAMES)}")
    text = _folder().joinpath(name + _SUFFIX).read_text(encoding="utf-8")
    return Template(name, text)


def templates() -> tuple[Template, ...]:
    """Every shipped template, cheapest first."""
    return tuple(get_template(name) for name in TEMPLATE_NAMES)
