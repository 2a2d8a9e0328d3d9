"""The host's one copy of the contract (filled in by the redesign of issue 20)."""
