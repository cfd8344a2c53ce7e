"""The 7 FER2013 classes in the dataset's own label order (0..6).

Never derive the order from folder names: sorting them alphabetically puts
"neutral" before "sad" and silently mislabels two classes.
"""

EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
NUM_CLASSES = len(EMOTIONS)
IMAGE_SIZE = 48
