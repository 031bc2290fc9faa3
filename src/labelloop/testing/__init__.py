"""Test helpers: a fake OpenAI-compatible server on loopback."""
