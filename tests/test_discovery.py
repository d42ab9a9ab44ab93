"""Zero-config discovery from the environment variables vendors' own SDKs read."""

from __future__ import annotations

from polyroute.config import load_config


def test_discovers_vendors_from_keys_and_urls() -> None:
    env = {
        "OPENAI_API_KEY": "sk-a-123456789",
        "XAI_API_KEY": "xai-123456789",
        "GROQ_API_KEY": "gsk-123456789",
        "OLLAMA_HOST": "127.0.0.1:11434",
    }
    config = load_config(None, env)
    vendors = config.open_vendors
    assert set(vendors) == {"openai", "xai", "groq", "ollama"}
    assert vendors["openai"].base_url == "https://api.openai.com/v1"
    assert vendors["xai"].headers["Authorization"] == "Bearer xai-123456789"
    assert vendors["groq"].base_url == "https://api.groq.com/openai/v1"
    assert vendors["ollama"].base_url == "http://127.0.0.1:11434/v1"
    assert "Authorization" not in vendors["ollama"].headers


def test_base_url_override_and_nothing_without_keys() -> None:
    config = load_config(None, {"OPENAI_API_KEY": "k" * 12,
                                "OPENAI_BASE_URL": "http://127.0.0.1:9/v1/"})
    assert config.open_vendors["openai"].base_url == "http://127.0.0.1:9/v1"
    assert load_config(None, {"OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}).open_vendors == {}


def test_known_quirks_and_listen_addresses() -> None:
    config = load_config(None, {"MISTRAL_API_KEY": "m" * 12, "OLLAMA_HOST": "0.0.0.0:11434"})
    mistral = config.open_vendors["mistral"].quirks
    assert mistral.stream_usage is False and mistral.max_tokens_field == "max_tokens"
    assert config.open_vendors["ollama"].base_url == "http://127.0.0.1:11434/v1"
    assert config.open_vendors["ollama"].quirks.max_tokens_field == "max_tokens"
