"""`ImageResult`: what one image (a photo, a live frame, an uploaded picture) gave: its size
and its faces. The CLI's JSON lines and files, `POST /api/predict` and the live socket all
send `to_dict()`, so the three speak the same JSON.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ferkit.vision.face import Face


@dataclass(frozen=True)
class ImageResult:
    faces: list[Face]
    width: int
    height: int
    file: str | None = None  # where the image came from, when it is a file

    @classmethod
    def of(cls, image: np.ndarray, faces: list[Face], file: str | None = None) -> ImageResult:
        return cls(list(faces), int(image.shape[1]), int(image.shape[0]), file)

    def to_dict(self) -> dict:
        """The JSON form: the file (if any), the image's size, each face's `to_dict()`."""
        head = {"file": self.file} if self.file is not None else {}
        return {
            **head,
            "width": self.width,
            "height": self.height,
            "faces": [face.to_dict() for face in self.faces],
        }

    def summary(self) -> str:
        """One line for a terminal: '2 face(s): #1 happy (91%), #2 sad (48%)'."""
        found = ", ".join(f"#{f.face_id} {f.emotion} ({f.score:.0%})" for f in self.faces)
        return f"{len(self.faces)} face(s){': ' + found if self.faces else ''}"
