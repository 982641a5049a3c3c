"""A small WSGI application with its own model and its own Alembic history, using
smarter-domain the way an existing application would (see "Adding smarter-domain to an
existing application" in docs/application.md)."""
