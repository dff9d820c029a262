"""Where the trainer runs (local subprocess or GPU pod) and the Pipes bridge process that the
launcher starts next to the pure-torch trainer."""
