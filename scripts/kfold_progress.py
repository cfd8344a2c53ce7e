"""The out-of-fold figure of an unfinished K-fold run, from the folds that are done.

`ferkit train --folds` states the figure only once every fold is done (`folds.json`). While a
long run is under way (the CPU's 5-fold takes hours), this pools the finished folds' held-out
scores at the last epoch (`ferkit.training.evaluate.last_epoch_scores`: not the best validation
epoch, which its own held-out faces chose), also of folds kept without their weights
(docs/model/folds/).

`--join RUN` joins each fold's net with RUN's net of the same fold (another recipe's K-fold run
of the same split) by the ensemble rule, each net (and `--with`'s model) weighing the same: an
ensemble recipe, measured out of fold.

`--with MODEL` also joins each fold's last-epoch net with MODEL (the blurred specialist, which
never saw a sharp face) by the ensemble rule and compares the two face by face: what
`ferkit evaluate --out-of-fold --ensemble-with MODEL` says once the run is finished.

`--against RUN` compares the run (with what `--join` and `--with` add) face by face with
another K-fold run of the same split (the shipped recipe's kept folds, say) on the folds both
have finished: the paired figures the shipping rule asks of a candidate recipe.
`--require-better` then exits 1 unless every fold is finished and the candidate wins by the
rule (`ferkit.training.evaluate.measurably_better`), and `--keep OUT` writes its answers as a
kept run, to be the next `--against` once it ships.

    .venv/bin/python scripts/kfold_progress.py runs/kfold-default [../shared/data/fer2013/publictest]
    .venv/bin/python scripts/kfold_progress.py runs/prev-kfold --with runs/blurred
    .venv/bin/python scripts/kfold_progress.py docs/model/folds/ema-40 --against docs/model/folds/prev-40
    .venv/bin/python scripts/kfold_progress.py docs/model/folds/prev-40 --join docs/model/folds/wide-40 \
        --with docs/model/folds/blurred-half --against docs/model/folds/prev-40 --require-better
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from ferkit.training import data
from ferkit.training.evaluate import (
    bootstrap_interval,
    fold_answers,
    fold_folders,
    joined_with,
    keep_folds,
    last_epoch_scores,
    mcnemar,
    measurably_better,
    metrics,
)


def pooled(name: str, y: np.ndarray, p: np.ndarray) -> None:
    m, ci = metrics(y, p), bootstrap_interval(y, p)
    acc, rec = ci["accuracy"], ci["macro_recall"]
    print(
        f"{name}: {m['accuracy']:.1%} (95% {acc[0]:.1%}-{acc[1]:.1%}), macro-recall "
        f"{m['macro_recall']:.1%} ({rec[0]:.1%}-{rec[1]:.1%}), on {len(y)} sharp faces"
    )


def main(args: argparse.Namespace) -> int:
    from ferkit.model.recognizer import FacialExpressionModel, geometric_mean

    run, member_folder, against = args.run, args.member, args.against
    faces = data.load(args.sharp)
    member = FacialExpressionModel.load(member_folder) if member_folder else None
    names, truth, answers, joined, paired, kept = [], [], [], [], [], {}
    finished = fold_answers([run, *args.join], faces)
    other = last_epoch_scores(against, faces) if against else {}
    for fold in fold_folders(run):
        if fold.name not in finished:
            print(f"{fold.name}: not finished")
            continue
        held, nets = finished[fold.name]
        scores = geometric_mean(nets)
        last = scores.argmax(axis=1)
        m = metrics(held.labels, last)
        line = f"{fold.name}: {m['accuracy']:.1%}, macro-recall {m['macro_recall']:.1%}"
        if member is not None:
            scores = joined_with(member, held.images, held.images, nets)
            joined.append(scores.argmax(axis=1))
            line += f"; joined with {member_folder}: {(joined[-1] == held.labels).mean():.1%}"
        kept[fold.name] = (held, scores)
        if fold.name in other:
            theirs, their_scores = other[fold.name]
            if theirs.names != held.names:
                sys.exit(f"{fold.name}: other held-out faces than {against}'s: not the same split")
            mine = scores.argmax(axis=1) == held.labels
            paired.append((mine, their_scores.argmax(axis=1) == held.labels))
            line += f"; {against}: {paired[-1][1].mean():.1%}"
        print(f"{line}; {len(held)} faces")
        names += held.names
        truth.append(held.labels)
        answers.append(last)
    if not truth:
        sys.exit(f"{run}: no finished fold")
    # pooled in the data's order, so the bootstrap draws the faces bench/accuracy.py draws
    order = np.argsort(faces.positions(names))
    y, p = np.concatenate(truth)[order], np.concatenate(answers)[order]
    pooled("pooled", y, p)
    if member is not None:
        j = np.concatenate(joined)[order]
        pooled(f"pooled, joined with {member_folder}", y, j)
        test = mcnemar(j == y, p == y)
        print(
            f"joined vs alone: right only joined {test['only_first']}, only alone "
            f"{test['only_second']}, McNemar p = {test['p']:.3f}"
        )
    done = len(kept) == len(fold_folders(run))
    if args.keep:
        if not done:
            sys.exit(f"--keep: {run} has unfinished folds")
        keep_folds(args.keep, kept, " ".join(sys.argv[1:]))
        print(f"kept the answers of every fold in {args.keep}")
    better = False
    if paired:
        mine, their = (np.concatenate(side) for side in zip(*paired, strict=True))
        test = mcnemar(mine, their)
        better = done and len(paired) == len(kept) and measurably_better(mine, their)
        print(
            f"against {against}, on the {len(mine)} faces of the folds both finished: "
            f"{mine.mean():.1%} against {their.mean():.1%}; right only here {test['only_first']}, "
            f"only there {test['only_second']}, McNemar p = {test['p']:.3f}"
        )
    if args.require_better and not better:
        print(f"{run}: not measurably better than {against} on every fold", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("sharp", nargs="?", default="../shared/data/fer2013/publictest")
    parser.add_argument(
        "--join", type=Path, action="append", default=[], help="a K-fold run to join fold by fold"
    )
    parser.add_argument("--with", dest="member", type=Path, help="a model folder to join")
    parser.add_argument("--against", type=Path, help="a K-fold run of the same split to compare")
    parser.add_argument(
        "--require-better", action="store_true", help="exit 1 unless it beats --against"
    )
    parser.add_argument("--keep", type=Path, help="write the answers as a kept run here")
    arguments = parser.parse_args()
    if arguments.require_better and not arguments.against:
        parser.error("--require-better needs --against RUN")
    sys.exit(main(arguments))
