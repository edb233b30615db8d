"""`make bench`: the cost of key verification against a no-auth baseline (see bench/README.md)."""
