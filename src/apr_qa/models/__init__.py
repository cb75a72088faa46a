"""Model handling: sources (local, Hugging Face), the config reader, the architecture
table (tensor names and layouts), streaming readers, and the reference GGUF converter.
(The defect injectors, mutants, are test machinery: ``apr_qa.testing``.)"""
