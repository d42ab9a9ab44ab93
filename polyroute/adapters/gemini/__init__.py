"""Google's Gemini API (``generateContent``, ``streamGenerateContent``, ``batchEmbedContents``):
the Gemini Developer API and servers that speak its protocol, told apart only by config."""
