"""Sending a prepared edition: the claim loop, batches, pace, MIME messages and the providers."""
