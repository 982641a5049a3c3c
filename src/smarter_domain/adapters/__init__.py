"""SQLAlchemy underneath the repository interfaces: the ORM rows, the engines the library
creates, and the SQL repositories (with the database's errors translated). Imports only
``model``."""
