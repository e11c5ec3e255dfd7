"""Training labels: market categories mapped onto the contract, and reviewed labels that override them."""
