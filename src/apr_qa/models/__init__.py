"""Model handling: sources (local, Hugging Face), the config reader, the architecture
table (tensor names and layouts), streaming readers, the reference GGUF converter, and
defect injectors (mutants)."""
