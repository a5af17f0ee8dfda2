"""The model server: EAS-style and OpenAI-compatible embedding, rerank, health, metrics."""
