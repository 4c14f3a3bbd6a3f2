"""Capture: owns the camera, microphone, button and LED, and records crash-safe sessions.

Sources are injected behind small interfaces; synthetic ones ship for the demo and CI.
"""
