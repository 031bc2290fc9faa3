"""Test helpers: a fake OpenAI-compatible server and live app servers on loopback."""
