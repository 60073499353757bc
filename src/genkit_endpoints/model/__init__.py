"""Calling models: the call policy around Genkit, provider choice and the offline model."""
