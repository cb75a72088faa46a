"""Test machinery shipped with apr-qa, kept apart from what a run needs.

``apr_qa.testing.fixtures`` trains the tiny fixture models that live, committed, under
``apr_qa/fixtures/models``; ``apr_qa.testing.mutants`` writes broken copies of them, the
ground truth every gate is tested against. Nothing in a qualification run imports this
package: the product only locates the committed models (``apr_qa.fixtures``).
"""
