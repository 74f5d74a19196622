"""Policy specs and the registry: random, VW configurations and rule policies."""
