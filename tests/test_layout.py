"""The house's rules, checked on the code itself: the import contracts (layers, no TensorFlow
outside training), no import circles, small modules, a lazy public API, and a README whose
every `ferkit` command is one the CLI accepts."""

import re
import shlex
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

from ferkit.cli import parser

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "ferkit"


def test_import_contracts_hold():
    lint_imports = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint_imports)], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:]
    assert "3 kept, 0 broken" in done.stdout


def test_no_import_circles():
    graph = grimp.build_graph("ferkit")
    imports = {m: graph.find_modules_directly_imported_by(m) for m in graph.modules}
    done, on_path, circles = set(), [], []

    def visit(module: str) -> None:  # depth first; a module met again on the path closes a circle
        on_path.append(module)
        for other in sorted(imports[module]):
            if other in on_path:
                circles.append(on_path[on_path.index(other) :] + [other])
            elif other not in done:
                visit(other)
        on_path.pop()
        done.add(module)

    for module in sorted(imports):
        if module not in done:
            visit(module)
    assert circles == []


def test_no_module_is_over_400_lines():
    sizes = {p.relative_to(PACKAGE): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    assert len(sizes) > 40
    assert {p: n for p, n in sizes.items() if n > 400} == {}


def test_public_api_is_lazy():
    code = (
        "import sys, ferkit\n"
        "assert 'cv2' not in sys.modules and 'onnxruntime' not in sys.modules\n"
        "from ferkit import Face, FacialExpressionModel, ImageResult, Pipeline, Stream\n"
        "assert Pipeline.__module__ == 'ferkit.vision.pipeline' and 'cv2' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    import ferkit

    with pytest.raises(AttributeError, match="no attribute 'Pipe'"):
        ferkit.Pipe  # noqa: B018


def readme_commands() -> list[str]:
    """Every `ferkit ...` command in the README: in code blocks, and inline in backticks."""
    text = (ROOT / "README.md").read_text()
    found = []
    for block in re.findall(r"```(?:sh|console|bash)?\n(.*?)```", text, re.S):
        lines = block.replace("\\\n", " ").splitlines()
        found += [line.lstrip("$ ").split(" #")[0] for line in lines]
    found += re.findall(r"`(ferkit [^`]+)`", text)
    return [c.strip() for c in found if c.strip().startswith("ferkit ")]


def test_every_readme_command_is_one_the_cli_accepts(capsys):
    commands = readme_commands()
    assert len(commands) >= 10
    cli = parser()
    for command in commands:
        words = shlex.split(command)[1:]
        if "--help" in words or "--version" in words:
            continue
        try:
            cli.parse_args(words)
        except SystemExit:
            pytest.fail(f"README: {command!r}: {capsys.readouterr().err.strip()}")
