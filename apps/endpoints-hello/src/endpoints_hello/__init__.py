"""The sample app: flows, schemas, settings and a thin main."""
