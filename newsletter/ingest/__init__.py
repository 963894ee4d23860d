"""Pulling the site's feeds: fetch (HTTP and files), parse, sanitize, store each article once."""
