"""A small WSGI application with its own model and its own Alembic history, using
smarter-domain the way an existing application would (see the README's "Adding
smarter-domain to an existing application")."""
