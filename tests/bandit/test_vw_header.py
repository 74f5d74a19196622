"""Model headers: their options are read before VW loads the bytes, and gated like any others."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
import vowpalwabbit

from bandit.model import LearnExample, Model, ModelError
from bandit.vw_args import gate
from bandit.vw_header import HeaderError, header_options
from tests.bandit.vw_forge import Header

CONFIGURATIONS = [
    "--cb_explore_adf --epsilon 0.2 --cb_type mtr -q ::",
    "--cb_explore_adf --bag 3 -q ab --cubic abc --ignore x -l 0.3 --power_t 0.1 --noconstant "
    "--coin",
    "--cb_explore_adf --squarecb --gamma_scale 10 --gamma_exponent 0.3",
    "--cb_explore_adf --regcb --mellowness 0.2 --cb_min_cost -1 --cb_max_cost 0",
    "--cb_explore_adf --cover 4 --psi 0.5 --nounif --cb_type dr",
    "--cb_explore_adf --regcbopt",
    "--cb_explore_adf --softmax --lambda 10",
    "--cb_explore_adf --first 5",
    "--cb_explore_adf --synthcover --synthcoverpsi 0.2 --synthcoversize 10",
    "--cb_explore_adf --rnd 3 --rnd_alpha 0.2 --rnd_invlambda 0.1",
    "--cb_explore_adf --adaptive --normalized --invariant --hash all --random_seed 5 "
    "--clip_p 0.1 --interactions ab --ignore_linear c --keep abcde --cb_min_cost -1",
    "--cb_explore_adf --sgd --bag 4 --greedify --first_only",
    "--cb_explore_adf --epsilon 0.1 -b 24",
]
PROBE = ([{"u": {"a": 1}}], ["|x p", "|x q"])


def _trained(args: str) -> bytes:
    model = Model(args)
    for i in range(20):
        model.learn([LearnExample([f"shared |u a{i}", "|x p", "|x q"], i % 2, 0.5, 1.0)])
    data, _ = model.serialize()
    model.close()
    return data


@pytest.mark.parametrize("args", CONFIGURATIONS)
def test_models_of_allowed_arguments_load(args: str) -> None:
    """What VW writes into the header of an allowed configuration passes the gate."""
    data = _trained(args)
    options = header_options(data)
    assert "--cb_explore_adf" in options.split()
    gate(options)
    loaded = Model(args, data=data)
    assert len(loaded.predict(*PROBE)) == 2
    loaded.close()


def _forged(options: bytes = b"", **fields: object) -> bytes:
    header = Header.read(_trained("--cb_explore_adf --epsilon 0.2 -q ::"))
    header.options = header.options.removesuffix(b"\x00") + options + b"\x00"
    for name, value in fields.items():
        setattr(header, name, value)
    return header.write()


def test_a_forged_header_would_make_vw_write_a_file(tmp_path: Path) -> None:
    """The forgery is one VW accepts: loaded ungated, the header's option writes the file."""
    target = tmp_path / "ungated.txt"
    path = tmp_path / "forged.vw"
    path.write_bytes(_forged(f" --readable_model {target}".encode()))
    raw = vowpalwabbit.Workspace(arg_list=["--quiet", "-i", str(path)])
    raw.finish()
    assert target.exists()


@pytest.mark.parametrize(
    ("extra", "target"),
    [
        (" --readable_model {path}", "--readable_model"),
        (" -f {path}", "-f"),
        (" -f{path}", "-f"),
        (" --final_regressor={path}", "--final_regressor"),
        (" --invert_hash {path}", "--invert_hash"),
        (" -p {path}", "-p"),
        (" --cache_file {path}", "--cache_file"),
        (" '--readable_model' \"{path}\"", "--readable_model"),
        (" -d /etc/passwd", "-d"),
        # The saved options end in a list option (--quadratic ::), which reads the path on.
        (" /etc/passwd", "--quadratic"),
        (" --cb_type mtr /etc/passwd", None),
        (" --sendto 127.0.0.1:9", "--sendto"),
        (" --daemon --port 0", "--daemon"),
    ],
)
def test_forged_header_options_are_refused_before_vw_loads(
    extra: str, target: str | None, tmp_path: Path
) -> None:
    path = tmp_path / "written"
    data = _forged(extra.format(path=path).encode())
    with pytest.raises(ModelError, match="header asks VW for options oO does not allow") as caught:
        Model("--cb_explore_adf --epsilon 0.2 -q ::", data=data)
    assert caught.value.target == target
    assert not path.exists()


def test_the_weight_budget_counts_the_headers_bits() -> None:
    Model("--cb_explore_adf", data=_forged(b" --bag 32")).close()  # 2^18 x 32: fine
    with pytest.raises(ModelError, match="2\\^29 weights") as caught:
        Model("--cb_explore_adf", data=_forged(b" --bag 32", bits=24))
    assert caught.value.target == "--bit_precision"


def test_an_id_with_spaces_cannot_smuggle_options(tmp_path: Path) -> None:
    """VW appends ` --id <id>` to the options, so an id is text VW splits too."""
    path = tmp_path / "written"
    data = _forged(model_id=f"x --readable_model {path}\x00".encode())
    with pytest.raises(ModelError, match="unrecognised option '--id'"):
        Model("--cb_explore_adf", data=data)
    data = _forged(ngrams=[b"2a\x00"])
    with pytest.raises(ModelError, match="unrecognised option '--ngram'"):
        Model("--cb_explore_adf", data=data)
    assert not path.exists()


def test_headers_the_reader_cannot_account_for_are_refused() -> None:
    good = _forged()
    header = Header.read(good)
    unterminated = header.write().replace(
        header.options, header.options.removesuffix(b"\x00") + b"x"
    )
    cases = {
        "not NUL-terminated": unterminated,
        "older than oO reads": _forged(version=b"8.0.2\x00"),
        "not a VW version": _forged(version=b"banana\x00"),
        "ends inside": good[:40],
        "no model marker": good.replace(b"\x00m", b"\x00n", 1),
        "bytes long": struct.pack("<I", 10_000) + good[4:],
    }
    for why, data in cases.items():
        with pytest.raises(HeaderError, match=why):
            header_options(data)
        with pytest.raises(ModelError, match="not a VW model VW can load"):
            Model("--cb_explore_adf", data=data)
