"""Import and export: files and DataFrames in, labeled data with provenance out."""
