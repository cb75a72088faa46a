"""JSON Schemas shipped with apr-qa (playbook, evidence record, summary)."""
