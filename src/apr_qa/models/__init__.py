"""Model handling: sources (local, Hugging Face), streaming readers, the reference GGUF
converter, and defect injectors (mutants)."""
