"""Turn-taking and the streaming STT -> LLM -> TTS pipeline; no I/O of its own (ports only)."""
