"""Encode: turns recordings into review assets, clips, stills and review films (ffmpeg)."""
