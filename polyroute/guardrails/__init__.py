"""Guardrails: detectors of personal data and secrets in text, and their redaction."""
