"""Parts of bench/bench_peers.py: the hard file, the exactness check, the peers and how to run them."""
