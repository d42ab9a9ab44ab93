"""The request pipeline: resolve → route → attempt loop → settle. No web framework, no SQL."""
