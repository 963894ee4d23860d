"""Subscribers, what the store keeps of readers: CSV import and export, normalized addresses,
signed tokens and the links that carry them."""
