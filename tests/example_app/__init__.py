"""An app outside the sample, written only against the kit's public API (tests run it)."""
