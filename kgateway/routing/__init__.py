"""Which broker a client connection goes to, and which gateway address stands for each broker."""
