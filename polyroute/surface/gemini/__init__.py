"""Gemini's native API (``/v1beta/models/{model}:generateContent`` and friends), so clients
built on Google's google-genai SDK can reach any routed model."""
