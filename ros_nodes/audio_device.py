"""PyAudio, imported only when a node needs a real sound card.

PyAudio needs PortAudio to build (Debian: portaudio19-dev), so it is an optional extra;
without it the audio nodes exit with one line saying what to install.
"""

from __future__ import annotations

from typing import Any

from ros_nodes.runtime import NodeExit


def open_pyaudio(node_name: str) -> Any:
    try:
        import pyaudio
    except ImportError:
        raise NodeExit(
            f"{node_name} needs PyAudio: pip install 'omni-agent[audio]' "
            "(Debian first: apt install portaudio19-dev)"
        ) from None
    return pyaudio
