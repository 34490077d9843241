"""The speech service: shared streaming STT and TTS for many calls (`storeagent speech serve`)."""
