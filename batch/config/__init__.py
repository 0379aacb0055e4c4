"""Configuration: flags, job files and the environment, resolved into one settings value."""
