"""Local fakes standing in for true boundaries (upstream LLM providers)."""
