"""The 7 FER2013 classes in the dataset's own label order (0..6).

Never derive the order from folder names: sorting them alphabetically puts
"neutral" before "sad" and silently mislabels two classes.
"""

EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
NUM_CLASSES = len(EMOTIONS)
IMAGE_SIZE = 48

# One BGR colour per emotion, so a label change is visible at a glance; the chart and the
# web pages use the same colours (`hex_colors`).
COLORS = {
    "angry": (40, 40, 220),
    "disgust": (40, 140, 40),
    "fear": (160, 60, 160),
    "happy": (40, 200, 240),
    "sad": (200, 120, 40),
    "surprise": (230, 200, 40),
    "neutral": (180, 180, 180),
}


def hex_colors() -> dict[str, str]:
    """The colours as CSS/matplotlib hex strings (#rrggbb)."""
    return {k: "#{:02x}{:02x}{:02x}".format(*reversed(bgr)) for k, bgr in COLORS.items()}
