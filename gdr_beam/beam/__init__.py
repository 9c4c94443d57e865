"""Apache Beam stages of gdr-beam: read inputs, refine them, write outputs and dead letters."""
