"""Training the classification head (torch lives here and in `models` only)."""
