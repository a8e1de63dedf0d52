"""Settings and data contracts shared by every layer."""
