"""Apache Beam stages of gdr-beam: reading inputs, refining them, writing outputs and dead letters."""
