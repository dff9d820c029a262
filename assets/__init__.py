"""Software-defined assets: daily feature tables (and, later, training and evaluation)."""
