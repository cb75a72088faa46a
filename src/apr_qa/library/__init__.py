"""The playbook library: shipped templates, and ``apr-qa init``'s playbook for a model.

- :mod:`~apr_qa.library.catalogue`: the templates (quick, ci, mvp, full), package data;
- :mod:`~apr_qa.library.survey`: what a model is (architecture, size, chat template);
- :mod:`~apr_qa.library.prompts`: scenarios in the model's prompt form;
- :mod:`~apr_qa.library.thresholds`: limits by size category;
- :mod:`~apr_qa.library.compose`: template + model -> playbook;
- :mod:`~apr_qa.library.write`: write it, record golden outputs, check it loads and plans.
"""

from __future__ import annotations

from apr_qa.library.catalogue import TEMPLATE_NAMES, Template, get_template, templates
from apr_qa.library.compose import compose, default_template, render
from apr_qa.library.survey import Survey, survey_model
from apr_qa.library.write import Written, write_playbook

__all__ = [
    "TEMPLATE_NAMES",
    "Survey",
    "Template",
    "Written",
    "compose",
    "default_template",
    "get_template",
    "render",
    "survey_model",
    "templates",
    "write_playbook",
]
