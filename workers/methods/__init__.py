"""One module per SSL method, behind the small interface in base.py."""
