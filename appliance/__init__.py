"""vigbox: a Raspberry Pi recording appliance for Video Interaction Guidance home visits."""

__version__ = "0.1.0"
