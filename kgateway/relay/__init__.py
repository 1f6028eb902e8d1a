"""The data path: a client leg and a broker leg per client connection."""
