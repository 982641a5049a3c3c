"""The domain's rules, without I/O: entities, errors, account numbers, the platform account,
what text may be stored, finding a tenant in a URL, what a unit of work changed, the manifest
schema and the repository interfaces. Imports nothing else of the library."""
