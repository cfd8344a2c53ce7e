"""Measure FER2013's own face framing: where CenterFace's 5 landmarks sit in a 48x48 face.

Each sharp training face of `publictest/` (never the validation split) is upscaled 3x with a
36 px replicated border, so the detector sees a face in context; the most confident face's
landmarks are mapped back to 48x48 coordinates and averaged. The result is
`ferkit.vision.align.FER_LANDMARKS`.

    .venv/bin/python scripts/fer_landmarks.py [../shared/data/fer2013/publictest]
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

from ferkit.training import data
from ferkit.vision.centerface import CenterFace

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    folder = sys.argv[1] if len(sys.argv) > 1 else ROOT.parent / "shared/data/fer2013/publictest"
    faces = data.load(folder).only(data.read_list(ROOT / "splits/publictest_train.txt"))
    net = CenterFace()
    marks = []
    for image in faces.images:
        big = cv2.resize(image, (144, 144), interpolation=cv2.INTER_CUBIC)
        big = cv2.copyMakeBorder(big, 36, 36, 36, 36, cv2.BORDER_REPLICATE)
        found = net.run(cv2.cvtColor(big, cv2.COLOR_GRAY2BGR), 0.5)
        if len(found):
            marks.append((found.landmarks[int(np.argmax(found.scores))] - 36) / 3)
    marks = np.array(marks, np.float64)
    print(f"{len(marks)} of {len(faces)} faces found")
    print("mean (x, y):", np.round(marks.mean(0), 2).tolist())
    print("std:", np.round(marks.std(0), 2).tolist())


if __name__ == "__main__":
    main()
