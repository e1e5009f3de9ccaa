"""Request and response models (pydantic v2, strict, unknown fields refused)."""
