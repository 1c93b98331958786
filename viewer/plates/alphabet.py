"""What our plate nets were trained to see: the characters, and a character's place in a window.

The class names themselves (A-Z, 0-9, background) are `viewer.maps.labels`, since any map
names its channels; this module holds what only plates need: the training window and how
much of it a centred character fills, which turns a net's window into a character height.
`viewer.dataset` draws its training windows from the same numbers.
"""
from __future__ import annotations

from viewer.maps.labels import CHARACTERS

WINDOW_SIZE = 28                  # the plate nets' input: a 28x28 window ...
CHAR_HEIGHT = (20.0, 25.0)        # ... with a centred character this many pixels tall
# A character's height as a share of the window: a net with a 28-pixel window reads
# characters about 0.8 x 28 pixels tall at scale 1.
CHAR_FILL = sum(CHAR_HEIGHT) / 2 / WINDOW_SIZE

LETTERS = CHARACTERS[:26]
DIGITS = CHARACTERS[26:]
