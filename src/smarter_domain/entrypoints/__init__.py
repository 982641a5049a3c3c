"""Ways into the library from outside Python code: the ``smarter-domain`` command."""
