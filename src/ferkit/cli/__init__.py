"""The `ferkit` command line: one sub-command per job.

Heavy libraries are imported inside each command, so `ferkit predict` never pays for
TensorFlow and `ferkit --help` answers at once. User mistakes print one `error:` line and
exit with status 2; a failure on some inputs of a batch exits with status 1.

Each command's parser and body live in the module of its group (`train`, `evaluate`,
`predict`, `batch`, `serve`); options they share in `common`.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

from ferkit import __version__
from ferkit.cli import batch, evaluate, predict, serve, train
from ferkit.cli.common import Parser
from ferkit.errors import FerkitError
from ferkit.quiet import quiet_tensorflow

COMMANDS = {
    "explore": (train.add_explore, train.cmd_explore),
    "train": (train.add_train, train.cmd_train),
    "evaluate": (evaluate.add_evaluate, evaluate.cmd_evaluate),
    "export": (evaluate.add_export, evaluate.cmd_export),
    "ensemble": (evaluate.add_ensemble, evaluate.cmd_ensemble),
    "predict": (predict.add_predict, predict.cmd_predict),
    "video": (predict.add_video, predict.cmd_video),
    "batch": (batch.add_batch, batch.cmd_batch),
    "serve": (serve.add_serve, serve.cmd_serve),
}


def parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="ferkit",
        description="Facial expression recognition (FER2013).",
        epilog="'ferkit COMMAND --help' shows a command's options and examples.",
    )
    p.add_argument("--version", action="version", version=f"ferkit {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add, _ in COMMANDS.values():
        add(sub)
    p.commands = sub.choices
    return p


class _Terminal(logging.StreamHandler):
    """The bare message on whatever stderr is now (a test's capture, a redirected file)."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("%(message)s"))

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def configure_logging(command: str) -> None:
    """ferkit's log lines, set up once for every command: with request and job ids for the
    server (`ferkit.web.logs`), the bare message on the terminal for the others (what batch,
    train and explore report as they go)."""
    logger = logging.getLogger("ferkit")
    if any(getattr(h, "ferkit_cli", False) for h in logger.handlers):
        return
    if command == "serve":
        from ferkit.web import logs

        handler = logs.setup()
    else:
        handler = _Terminal()
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        # which model loaded, and how fast, is the server log's; a command says what it did
        logging.getLogger("ferkit.model").setLevel(logging.WARNING)
    handler.ferkit_cli = True


def _interrupted(signum, frame) -> None:
    raise KeyboardInterrupt  # unwinds like Ctrl-C: temporary files removed, exit 130


def main(argv: list[str] | None = None) -> int:
    quiet_tensorflow()  # train, explore --augment, export, --engine keras: ferkit's lines only
    previous = {}
    try:
        args = parser().parse_args(argv)
        configure_logging(args.command)
        if args.command != "serve" and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGHUP):  # `kill`, a closed terminal
                if signal.getsignal(sig) is signal.SIG_DFL:  # not under nohup, not a host's
                    previous[sig] = signal.signal(sig, _interrupted)
        code = COMMANDS[args.command][1](args)
        sys.stdout.flush()  # a closed pipe shows here, inside the try, not at exit
        return code
    except FerkitError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `ferkit ... | head`: the reader has gone, which is no error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as err:  # a file the user named that cannot be read or written
        where = f"{err.filename}: " if err.filename else ""
        print(f"error: {where}{err.strerror or err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # commands with something to keep say more themselves
        print("\ninterrupted", file=sys.stderr)
        return 130
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
