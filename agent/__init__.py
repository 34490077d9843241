"""The StoreAgent agent service: answers a shop's calls (ESL control + audio websocket + STT/LLM/TTS)."""
