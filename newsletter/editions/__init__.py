"""Editions: slots, what an edition offers, ranking, per-reader plans, variants composed once,
personalization, preparation (variants and the ledger's first rows), and the preview."""
