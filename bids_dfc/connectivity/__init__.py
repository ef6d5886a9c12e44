"""nipype-free connectivity maths: seed and atlas tables, weight maps, series, dFC tables."""
