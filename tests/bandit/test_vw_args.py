"""The VW argument gate: what it allows, how it reads text the way VW does, what it refuses."""

from __future__ import annotations

import ast
import socket
from pathlib import Path

import pytest
import vowpalwabbit

from bandit.model import Model, ModelError, workspace
from bandit.vw_args import VwArgsError, gate, parse, split_command_line
from bandit.vw_options import OPTIONS, Flag
from tests.bandit import vw_help

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        (
            "--cb_explore_adf --epsilon 0.2 --cb_type mtr -q ::",
            "--cb_explore_adf --epsilon 0.2 --cb_type mtr -q ::",
        ),
        ("--cb_explore_adf --epsilon=0.30", "--cb_explore_adf --epsilon 0.3"),
        ("--cb_explore_adf -qab --quadratic=cd -q ab", "--cb_explore_adf -q ab -q cd"),
        ("--cb_explore_adf -q ab cd", "--cb_explore_adf -q ab -q cd"),
        ("--cb_explore_adf -b18 --bit_precision 18", "--cb_explore_adf -b 18"),
        ("--cb_explore_adf --learning_rate 0.5 -l .5", "--cb_explore_adf -l 0.5"),
        ("--cb_explore_adf --cb_type 'mtr' \"--bag\" 4", "--cb_explore_adf --cb_type mtr --bag 4"),
        ("  --cb_explore_adf   --lambda 1e1 --softmax ", "--cb_explore_adf --lambda 10 --softmax"),
        (
            "--cb_explore_adf --cb_min_cost -1 --cb_max_cost 0",
            "--cb_explore_adf --cb_min_cost -1 --cb_max_cost 0",
        ),
        ("--cb_explore_adf --quiet --quiet", "--cb_explore_adf --quiet"),
        ("--cb_explore_adf --ignore ab --ignore c", "--cb_explore_adf --ignore ab --ignore c"),
        ("--cb_explore_adf --l2 1e-06", "--cb_explore_adf --l2 1e-06"),
    ],
)
def test_allowed_arguments_come_back_canonical(text: str, canonical: str) -> None:
    assert gate(text) == canonical
    assert gate(canonical) == canonical


TMP = "/tmp/oo-gate-never"  # never created: the gate refuses before anything runs


@pytest.mark.parametrize(
    ("text", "target", "why"),
    [
        (f"--cb_explore_adf -f {TMP}", "-f", "reads or writes files"),
        (f"--cb_explore_adf -f{TMP}", "-f", "reads or writes files"),
        (f"--cb_explore_adf --final_regressor={TMP}", "--final_regressor", "files"),
        (f"--cb_explore_adf --readable_model {TMP}", "--readable_model", "files"),
        (f"--cb_explore_adf -p {TMP}", "-p", "files"),
        (f"--cb_explore_adf --cache_file {TMP}", "--cache_file", "files"),
        (f"--cb_explore_adf --invert_hash {TMP}", "--invert_hash", "files"),
        ("--cb_explore_adf -d /etc/passwd", "-d", "files"),
        ("--cb_explore_adf -d/etc/passwd", "-d", "files"),
        ("--cb_explore_adf -i/etc/passwd", "-i", "files"),
        (f'--cb_explore_adf "-f" {TMP}', "-f", "files"),
        (f"--cb_explore_adf '--readable_model' '{TMP}'", "--readable_model", "files"),
        (f"--cb_explore_adf \\-f {TMP}", "-f", "files"),
        ("--cb_explore_adf --sendto 127.0.0.1:9", "--sendto", "sockets"),
        ("--cb_explore_adf --sendto=127.0.0.1:9", "--sendto", "sockets"),
        ("--cb_explore_adf --port 18720", "--port", "sockets"),
        ("--cb_explore_adf --daemon", "--daemon", "daemon"),
        ("--cb_explore_adf --dsjson", "--dsjson", "parsed"),
        ("--cb_explore_adf --lrq ab4", "--lrq", "unrecognised option '--lrq'"),
        ("--cb_explore_adf --final", "--final", "unrecognised option '--final'"),
        ("--cb_explore_adf -t", "-t", "unrecognised option '-t'"),
        ("--cb_explore_adf --epsilon 2", "--epsilon", r"a number in \[0, 1\]"),
        ("--cb_explore_adf --epsilon nan", "--epsilon", "a number"),
        ("--cb_explore_adf --epsilon", "--epsilon", "needs a value"),
        ("--cb_explore_adf --epsilon -f", "--epsilon", "a number"),
        ("--cb_explore_adf --bag 33", "--bag", r"a whole number in \[1, 32\]"),
        ("--cb_explore_adf --cover 4.0", "--cover", "a whole number"),
        ("--cb_explore_adf -b 25", "-b", r"\[1, 24\]"),
        ("--cb_explore_adf -b 24 --bag 2", "-b", "2\\^25 weights"),
        ("--cb_explore_adf --cb_type nope", "--cb_type", "one of ips, dr, mtr, dm, sm"),
        ("--cb_explore_adf -q a/", "-q", "namespace letters"),
        (f"--cb_explore_adf -q ab {TMP}", "-q", "namespace letters"),
        ("--cb_explore_adf --interactions abcd", "--interactions", "2-3 namespace letters"),
        ("--cb_explore_adf --ignore :", "--ignore", "namespace letters"),
        ("--cb_explore_adf --epsilon 0.1 --epsilon 0.2", "--epsilon", "twice"),
        ("--cb_explore_adf --quiet=1", "--quiet", "takes no value"),
        ("--cb_explore_adf --squarecb --elim", "--elim", "negative probabilities"),
        ("--cb_explore_adf --epsilon=", "--epsilon", "after '='"),
        (
            "--cb_explore_adf " + " ".join(f"-q {a}{b}" for a in "abcdefghi" for b in "abcdefgh"),
            "-q",
            "at most 64",
        ),
    ],
)
def test_refused_arguments_name_the_option(text: str, target: str, why: str) -> None:
    with pytest.raises(VwArgsError, match=why) as caught:
        parse(text)
    assert caught.value.target == target
    assert target in str(caught.value)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("/etc/passwd", "positional argument"),
        ("--cb_explore_adf /etc/passwd", "positional argument"),
        ("--cb_explore_adf -- -f /tmp/x", "'--' ends"),
        ("--cb_explore_adf 'unbalanced", "unbalanced quotes"),
        ("--cb_explore_adf \\", "lone backslash"),
        ("--cb_explore_adf\x00", "NUL"),
        ("--cb_explore_adf " + "-q :: " * 700, "longer than 4096"),
    ],
)
def test_refused_text_that_is_no_one_option(text: str, why: str) -> None:
    with pytest.raises(VwArgsError, match=why) as caught:
        parse(text)
    assert caught.value.target is None


def test_a_tab_is_part_of_a_token_as_in_vw() -> None:
    assert split_command_line("a\tb c") == ["a\tb", "c"]
    with pytest.raises(VwArgsError, match=r"unrecognised option '--cb_explore_adf\\t-f\\t/x'"):
        parse("--cb_explore_adf\t-f\t/x")


def test_the_tokenizer_reads_quotes_and_escapes_like_vw() -> None:
    assert split_command_line("""a 'b c' "d 'e'" f\\ g h\\n ''""") == [
        "a",
        "b c",
        "d 'e'",
        "f g",
        "h\n",
    ]
    assert split_command_line("--q='a b'") == ["--q=a b"]


def test_numbers_are_not_options_as_in_vw() -> None:
    # VW takes "-1" and "-inf" for values, not options, so a list option keeps reading them.
    with pytest.raises(VwArgsError, match="namespace letters") as caught:
        parse("--cb_explore_adf -q ab -1")
    assert caught.value.target == "-q"


def test_every_allowed_option_is_a_vw_option_of_the_same_shape() -> None:
    """The allow-list names only real VW options, each taking values as VW's own does."""
    vw_options = {o["long"]: o for o in vw_help.load()}
    for option in OPTIONS:
        vw = vw_options[option.long]
        assert (vw["short"] in option.names) or vw["short"] is None, option.long
        takes = "flag" if isinstance(option.value, Flag) else "args" if option.listed else "arg"
        assert vw["takes"] == takes, option.long


def test_the_committed_option_list_is_the_installed_vws() -> None:
    assert vw_help.options_from_help(vw_help.help_text()) == vw_help.load()


def test_vw_is_handed_the_canonical_tokens(tmp_path: Path) -> None:
    """`workspace` gates; VW sees exactly the canonical options (plus --quiet)."""
    vw = workspace("--cb_explore_adf   --epsilon=0.3 -qab")
    try:
        supplied = vw.get_arguments().split()
    finally:
        vw.finish()
    assert {"--cb_explore_adf", "--epsilon", "--quadratic", "ab", "--quiet"} <= set(supplied)
    # VW's own account of its options passes the gate (less the two pyvw and VW add).
    parse(" ".join(t for t in supplied if t not in {"--no_stdin", "--no_predict"}))
    with pytest.raises(ModelError, match="reads or writes files") as caught:
        workspace(f"--cb_explore_adf -f {tmp_path / 'model'}")
    assert caught.value.target == "-f"
    assert not (tmp_path / "model").exists()


def test_raw_vw_would_write_files_and_connect_which_is_why_the_gate_exists(
    tmp_path: Path,
) -> None:
    """The checks the route tests rely on do see what an ungated VW does."""
    target = tmp_path / "written.vw"
    raw = vowpalwabbit.Workspace(f"--cb_explore_adf -f {target} --quiet")
    raw.finish()
    assert target.exists()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.setblocking(False)
        port = listener.getsockname()[1]
        with pytest.raises(ModelError, match="--sendto opens network sockets"):
            Model(f"--cb_explore_adf --sendto 127.0.0.1:{port}")
        with pytest.raises(BlockingIOError):
            listener.accept()
        sender = vowpalwabbit.Workspace(f"--cb_explore_adf --sendto 127.0.0.1:{port} --quiet")
        connection, _ = listener.accept()  # the ungated VW connected
        connection.close()
        del sender


def test_only_the_model_module_builds_vw_workspaces() -> None:
    """One door: every other module goes through `bandit.model.workspace` or `Model`."""
    importers = []
    packages = (
        "bandit",
        "policies",
        "rewards",
        "experiments",
        "integrations",
        "api",
        "notifier",
        "dashboards",
    )
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(), str(path))
            for node in ast.walk(tree):
                names = (
                    [alias.name for alias in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module or ""]
                    if isinstance(node, ast.ImportFrom)
                    else []
                )
                if any(name.split(".")[0] in ("vowpalwabbit", "pylibvw") for name in names):
                    importers.append(str(path.relative_to(ROOT)))
    assert importers == ["bandit/model.py", "bandit/model.py"]  # pyvw and its native module


def test_the_adr_table_lists_exactly_the_allowed_options() -> None:
    adr = (ROOT / "docs/adr/0009-vw-arguments-from-an-allow-list.md").read_text()
    rows = [line for line in adr.splitlines() if line.startswith("| `")]
    expected = []
    for option in OPTIONS:
        names = ", ".join(f"`{name}`" for name in sorted(option.names, key=len))
        value = "flag" if isinstance(option.value, Flag) else option.value.describe()
        value += "; repeatable" if option.listed else ""
        expected.append(f"| {names} | {value} | {option.help} |")
    assert rows == expected
