"""The GitHub Action: ``apr-qa action`` reads the runner's inputs and environment,
runs the playbooks through :mod:`apr_qa.api`, and reports back to GitHub.

One noun per module: :mod:`~apr_qa.action.inputs` (``INPUT_*``, validated),
:mod:`~apr_qa.action.context` (the ``GITHUB_*`` environment and event),
:mod:`~apr_qa.action.commands` (workflow commands, escaped; untrusted text fenced),
:mod:`~apr_qa.action.summary`, :mod:`~apr_qa.action.outputs`,
:mod:`~apr_qa.action.annotations`, :mod:`~apr_qa.action.comment` (the PR comment),
:mod:`~apr_qa.action.readme_commit` (certification committed back) and
:mod:`~apr_qa.action.main`, which strings them together.
"""

from apr_qa.action.main import run_action

__all__ = ["run_action"]
