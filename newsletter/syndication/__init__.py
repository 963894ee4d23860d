"""The public archive and its feeds: every sent edition as pages, Atom, RSS and JSON feeds, per
category and language, kept rendered, pushed to WebSub hubs and exportable as static files."""
