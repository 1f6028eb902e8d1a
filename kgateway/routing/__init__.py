"""Where each port leads and which gateway address stands for each broker."""
