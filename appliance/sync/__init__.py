"""Sync: sends encrypted clips, stills and manifests to the office store."""
