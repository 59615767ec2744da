"""One module per resource of the daemon's API; every call returns its JSON as dicts and lists."""
