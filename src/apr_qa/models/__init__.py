"""Model handling: sources (local, Hugging Face), streaming readers, and the reference
GGUF converter. (The defect injectors, mutants, are test machinery: ``apr_qa.testing``.)"""
