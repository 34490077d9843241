"""The shop: profile, opening hours, holidays, and the tools the LLM may call."""
