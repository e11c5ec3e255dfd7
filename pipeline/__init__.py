"""narcotag: tag drug type, quantity, shipping origin and laundering hints in darknet-market listings and
messenger ads. Importing this package has no side effects."""

__version__ = "0.1.0"
