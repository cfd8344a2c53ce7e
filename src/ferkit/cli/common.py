"""What every command shares: the parser's one-line usage errors, help with examples and
defaults, output folders made (or refused) before any work, value checks, and the model,
face and video options.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from ferkit.errors import FerkitError
from ferkit.model.folder import ENGINES

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import TypeAlias

    from ferkit.vision.pipeline import Pipeline

    # what `add_subparsers` returns: each command's add_* is handed it
    Subcommands: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]


class Parser(argparse.ArgumentParser):
    """argparse's, with a usage mistake said as every other mistake is: one `error:` line
    (where to look, not the whole usage block), exit status 2. Sub-commands' parsers are of
    the class of their parent, so this holds for every command."""

    commands: dict[str, argparse.ArgumentParser] = {}  # the top parser's, by name

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see '{self.prog} --help')\n")

    def parse_args(
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> argparse.Namespace:
        known, extras = self.parse_known_args(args, namespace)
        if extras:  # said by the command's parser: its --help lists what it takes
            command = self.commands.get(getattr(known, "command", None), self)
            command.error(f"unrecognized arguments: {' '.join(extras)}")
        return known


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Examples kept as written, and every option's default shown where it has one."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        has_default = action.default not in (None, False, argparse.SUPPRESS)
        if action.option_strings and has_default and "default" not in text:  # not said already
            text += " (default: %(default)s)"
        return text


def command(
    sub: Subcommands, name: str, summary: str, examples: list[str]
) -> argparse.ArgumentParser:
    """A sub-command whose --help ends with examples to copy."""
    return sub.add_parser(
        name,
        help=summary,
        description=summary[0].upper() + summary[1:] + ".",
        epilog="examples:\n" + "\n".join(f"  {e}" for e in examples),
        formatter_class=HelpFormatter,
    )


def make_folder(folder: Path, output: Path | None = None) -> None:
    """Create an output folder before any work is done, or say in one line why it cannot be."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise FerkitError(
            f"{output or folder}: cannot create the folder {folder} ({err.strerror})"
        ) from err
    if not os.access(folder, os.W_OK):
        raise FerkitError(f"{output or folder}: the folder {folder} is not writable")


def output_folder(path: Path | None) -> None:
    """`make_folder` for the folder an output file goes into."""
    if path is not None:
        make_folder(Path(path).parent, path)


def check_outputs(inputs: list[Path], outputs: list[Path | None]) -> None:
    """Refuse, before any work, an output that would replace an input (`--out clip.mp4` for
    clip.mp4), another output (`--csv x --json x`) or a folder."""
    given = {p.resolve() for p in inputs if os.path.exists(p)}  # False where it may not look
    taken: set[Path] = set()
    for path in outputs:
        if path is None:
            continue
        real = path.resolve()
        if real in given:
            raise FerkitError(f"{path}: this output would overwrite an input; choose another name")
        if real in taken:
            raise FerkitError(f"{path}: named for two outputs; give each its own name")
        if path.is_dir():
            raise FerkitError(f"{path}: is a folder; give a file name for this output")
        taken.add(real)


def check_data_apart(data: list[Path | None], out: Path, names: list[str]) -> None:
    """`--out` of explore/evaluate: not inside a class folder given as data (its PNGs would
    be read as faces next time), and none of its `names` an input file."""
    for path in filter(None, data):
        if path.is_dir() and out.resolve().is_relative_to(path.resolve()):
            raise FerkitError(f"{out}: inside the data folder {path}; choose a folder outside it")
    check_outputs([p for p in data if p is not None], [out / n for n in names])


def note_loops(loops: list[Path]) -> None:
    """One line for each link in an input folder that leads round in a loop (left out)."""
    for link in loops:
        print(f"note: left out {link}: a symbolic link loop", file=sys.stderr)


def _whole(text: str, least: int) -> int:
    if not text.isdigit() or int(text) < least:
        raise argparse.ArgumentTypeError(f"a whole number of {least} or more, not {text!r}")
    return int(text)


def count(text: str) -> int:
    """A whole number of 1 or more (frames, workers): anything else is a usage error."""
    return _whole(text, 1)


def whole(text: str) -> int:
    """A whole number of 0 or more (a per-client cap, where 0 means none)."""
    return _whole(text, 0)


def _number(text: str, fits: Callable[[float], bool], wanted: str) -> float:
    """`text` as a number that `fits`, else a usage error saying what was `wanted` (not a
    number, NaN included, fits nothing)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not fits(value):
        raise argparse.ArgumentTypeError(f"{wanted}, not {text!r}")
    return value


def positive(text: str) -> float:
    """A number above 0 (seconds, megabytes): anything else is a usage error."""
    return _number(text, lambda v: 0 < v < math.inf, "a number above 0")


def port(text: str) -> int:
    """A TCP port, 1-65535: anything else is a usage error, not a traceback from bind()."""
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"a port from 1 to 65535, not {text!r}")
    return int(text)


def share(text: str) -> float:
    """A number from 0 to 1 (a share of the target): anything else is a usage error."""
    return _number(text, lambda v: 0 <= v <= 1, "a number from 0 to 1")


def add_model_options(p: argparse.ArgumentParser, engine_flag: str = "--engine") -> None:
    """--model and its engine (`batch` names it --model-engine: its --engine is the cluster's)."""
    p.add_argument("--model", type=Path, help="model folder (default: the embedded model)")
    p.add_argument(
        engine_flag,
        default="auto",
        choices=ENGINES,
        help="auto: ONNX Runtime on model.int8.onnx, else model.onnx, when the folder has one; else Keras",
    )


def add_video_options(p: argparse.ArgumentParser) -> None:
    """How videos are read: shared by `video` and `batch`."""
    p.add_argument("--every", type=count, default=1, help="classify every N-th frame")
    p.add_argument(
        "--no-smooth", action="store_true", help="no score smoothing (faces are still tracked)"
    )
    p.add_argument(
        "--min-track",
        type=count,
        default=3,
        help="frames a face must be seen in before it counts (shorter tracks are left out of "
        "the video, CSV, chart and summary; default: %(default)s)",
    )


def add_face_options(p: argparse.ArgumentParser) -> None:
    # the stages' own lists (OpenCV is loaded with them: 0.1 s on `--help`, none on a run)
    from ferkit.vision.align import CROPS
    from ferkit.vision.detectors import DETECTORS
    from ferkit.vision.face import DOUBTFUL, MIN_DETECTION

    p.add_argument(
        "--detector",
        default="centerface",
        choices=DETECTORS,
        help="face detector (default: %(default)s); none: each image is one face crop",
    )
    p.add_argument(
        "--min-face",
        type=float,
        help="smallest face to look for, in pixels (default: 1/16 of the image's long side, "
        "20-40 px; 1%% of it above 4000 px)",
    )
    p.add_argument(
        "--min-detection",
        type=share,
        default=MIN_DETECTION,
        help="drop faces the detector rates below this, 0-1 (default: %(default)s); those "
        f"below {DOUBTFUL} are kept but marked doubtful",
    )
    p.add_argument(
        "--crop",
        default="square",
        choices=CROPS,
        help="model input: the box made square (default), aligned to FER2013's framing by its "
        "landmarks, or the bare box",
    )


def pipeline(args: argparse.Namespace) -> Pipeline:
    from ferkit.model.recognizer import FacialExpressionModel
    from ferkit.vision.pipeline import Pipeline

    model = FacialExpressionModel.load(args.model, args.engine)
    return Pipeline(model, args.detector, args.crop, args.min_face, args.min_detection)
