"""The pages' words, one TOML file per area (a package, so that they ship with it)."""
