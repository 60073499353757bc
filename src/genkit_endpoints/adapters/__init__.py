"""Framework adapters generated from the flow route table."""
