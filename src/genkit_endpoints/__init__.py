"""Production serving for Genkit flows: REST + SSE and gRPC endpoints with policies."""
