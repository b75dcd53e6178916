"""asv benchmarks of mbk, each with scikit-learn beside it (see bench/asv.conf.json)."""
