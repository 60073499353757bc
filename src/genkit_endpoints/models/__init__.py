"""Genkit model plugins that run without a provider (the offline model and its helpers)."""
