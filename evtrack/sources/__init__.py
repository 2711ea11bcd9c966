"""Input readers: one module per input kind, and the only place that imports a parser library."""
