"""Export: SavedModels for TF Serving, their clients, and TFLite files."""
