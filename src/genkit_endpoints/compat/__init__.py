"""Where the kit reaches into third-party libraries beyond their plain use, one module per
dependency, each next to the range of versions it was checked against. The lowest
layer: it imports nothing else of the kit, and nothing here runs at import time."""
