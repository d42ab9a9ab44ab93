"""OpenAI's chat-completions and embeddings protocol: OpenAI itself and every compatible server
(xAI, Groq, Mistral, DeepSeek, Together, vLLM, llama.cpp, Ollama …), told apart only by config."""
