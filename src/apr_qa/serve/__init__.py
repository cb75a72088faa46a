"""The serve modality: OpenAI-compatible servers apr-qa starts, or reaches.

A serve cell's "worker" is a server: :mod:`apr_qa.serve.launch` starts one
(llama-cpp-python's server for GGUF, :mod:`apr_qa.serve.app` over transformers
for safetensors, or the playbook's own ``serve.command``) or waits for the one at
``serve.url``; :mod:`apr_qa.serve.http` is the small stdlib client everything
speaks to it with; :mod:`apr_qa.serve.spec` reads the playbook's ``serve`` section.
"""
