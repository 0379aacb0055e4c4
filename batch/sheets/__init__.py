"""Sheets: reading input files (CSV and its dialects, xlsx, Parquet, JSON lines) and writing
results."""
