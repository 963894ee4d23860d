"""newsletter: pulls a news site's feeds, ranks what is trending, composes and sends digests."""

__version__ = "0.1.0"
