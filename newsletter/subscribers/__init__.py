"""Readers: CSV import and export, normalized addresses, signed tokens and the links that carry them."""
