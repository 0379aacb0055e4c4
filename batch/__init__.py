"""reroute: safe, paced, resumable bulk changes to VoiceLink call routing."""

from __future__ import annotations

__version__ = "0.1.0"
