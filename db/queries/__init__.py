"""Named SQL statements, one module per resource, each with a thin typed function."""
