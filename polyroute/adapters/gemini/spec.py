"""Google's Gemini API: the key in ``x-goog-api-key``, no options."""

from polyroute.adapters.spec import ProtocolSpec

SPEC = ProtocolSpec(name="gemini", adapter="polyroute.adapters.gemini.adapter:GeminiAdapter",
                    auth="x-goog-api-key")
