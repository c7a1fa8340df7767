"""Writes static/audio.wav: the project's own alert, two short rising tones (0.36 s).

python scripts/make_alert_sound.py
"""

from __future__ import annotations

import math
import struct
import wave
from pathlib import Path

RATE = 22_050
TONES = [(880.0, 0.14), (0.0, 0.04), (1318.5, 0.18)]  # A5, a breath, E6
VOLUME = 0.6


def samples() -> list[int]:
    out: list[int] = []
    for frequency, seconds in TONES:
        count = int(RATE * seconds)
        for n in range(count):
            # 8 ms fades so the tone starts and stops without a click.
            fade = min(1.0, n / (0.008 * RATE), (count - n) / (0.008 * RATE))
            value = math.sin(2 * math.pi * frequency * n / RATE) if frequency else 0.0
            out.append(int(32767 * VOLUME * fade * value))
    return out


def main() -> None:
    path = Path(__file__).resolve().parent.parent / "static" / "audio.wav"
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        wav.writeframes(b"".join(struct.pack("<h", s) for s in samples()))
    print(path)


if __name__ == "__main__":
    main()
