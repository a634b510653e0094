import pytest
import torch

from cnnbench.checkpoints import load_checkpoint, save_checkpoint
from cnnbench.engine import checkpoint as ckpt_mod
from cnnbench.engine.checkpoint import load_resume_checkpoint
from cnnbench.errors import CheckpointError, OutputError


def _state(value: float) -> dict:
    return {"model": {"w": torch.full((3,), value)}, "epoch": int(value)}


def test_last_keeps_previous_as_prev(tmp_path):
    save_checkpoint(tmp_path, "last", _state(1))
    save_checkpoint(tmp_path, "last", _state(2))
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 2
    assert load_checkpoint(tmp_path / "last.prev.pt")["epoch"] == 1


def test_save_failing_halfway_keeps_previous_last_and_leaves_no_partial_file(tmp_path, monkeypatch):
    save_checkpoint(tmp_path, "last", _state(1))

    def torch_save_dies_halfway(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 partial zip")  # some bytes reach the temp file, then the writer dies
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ckpt_mod.torch, "save", torch_save_dies_halfway)
    with pytest.raises(OutputError, match=r"last\.pt: the disk is full; the previous version is kept"):
        save_checkpoint(tmp_path, "last", _state(2))
    monkeypatch.undo()
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 1
    # no temp file left; each checkpoint has its checksum beside it
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "last.prev.pt",
        "last.prev.pt.sha256",
        "last.pt",
        "last.pt.sha256",
    ]


def test_changed_contents_of_the_same_size_are_caught_by_the_checksum(tmp_path):
    """Sixteen float values overwritten inside last.pt: it still loads, but the checksum refuses it."""
    save_checkpoint(tmp_path, "last", {"model": {"w": torch.zeros(4096)}, "epoch": 1})
    save_checkpoint(tmp_path, "last", {"model": {"w": torch.ones(4096)}, "epoch": 2})
    path = tmp_path / "last.pt"
    data = bytearray(path.read_bytes())
    at = data.index(torch.ones(16).numpy().tobytes())  # the tensor's bytes inside the zip
    data[at : at + 64] = torch.full((16,), 7.0).numpy().tobytes()
    path.write_bytes(bytes(data))
    assert torch.load(path, weights_only=True)["model"]["w"][0] == 7.0  # torch alone would not notice
    with pytest.raises(CheckpointError, match=r"last\.pt does not match its checksum in last\.pt\.sha256"):
        load_checkpoint(path)
    ckpt, notes = load_resume_checkpoint(tmp_path)
    assert ckpt["epoch"] == 1 and "checksum" in notes[0] and "falling back" in notes[0]


def test_a_weights_only_file_over_last_is_not_resumed_from(tmp_path):
    save_checkpoint(tmp_path, "last", {"model": {"w": torch.ones(2)}, "epoch": 1})  # as best.pt is written
    with pytest.raises(CheckpointError, match=r"holds no training state .*cannot be resumed from"):
        load_resume_checkpoint(tmp_path, require=ckpt_mod.RESUME_KEYS)


def test_a_checkpoint_with_code_is_refused_for_safety_not_called_damaged(tmp_path):
    import collections

    torch.save({"format": "x", "model": collections.OrderedDict(), "evil": print}, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match=r"not plain tensors and was refused for safety"):
        load_checkpoint(tmp_path / "bad.pt")


def test_corrupted_last_falls_back_to_previous_with_a_note(tmp_path):
    save_checkpoint(tmp_path, "last", _state(1))
    save_checkpoint(tmp_path, "last", _state(2))
    data = (tmp_path / "last.pt").read_bytes()
    (tmp_path / "last.pt").write_bytes(data[: len(data) // 2])  # truncated on disk
    ckpt, notes = load_resume_checkpoint(tmp_path)
    assert ckpt["epoch"] == 1
    assert "last.pt could not be loaded" in notes[0] and "falling back" in notes[0]


def test_no_usable_checkpoint_names_every_file(tmp_path):
    (tmp_path / "last.pt").write_bytes(b"garbage")  # never written by torch.save
    (tmp_path / "last.prev.pt").write_bytes(b"PK\x03\x04 more garbage")  # an archive that does not open
    with pytest.raises(
        CheckpointError, match=r"last\.pt is not a cnnbench checkpoint.*last\.prev\.pt is damaged or truncated"
    ):
        load_resume_checkpoint(tmp_path)


def test_not_a_cnnbench_checkpoint(tmp_path):
    torch.save({"state_dict": {}}, tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match=r"x\.pt is not a cnnbench checkpoint"):
        load_checkpoint(tmp_path / "x.pt")


EXPECTED = (
    "expected a .pt file written by cnnbench train: a torch.save dict with the keys 'format' "
    "('cnnbench-checkpoint-v1') and 'model' (the weights)"
)


@pytest.mark.parametrize(
    ("write", "found"),
    [
        (lambda p: p.write_text("hello world, not a checkpoint\n"), "it is not a file written by torch.save"),
        (lambda p: p.write_bytes(bytes(range(105, 205))), "it is not a file written by torch.save"),
        (lambda p: torch.save({"a": 1, "b": torch.zeros(2)}, p), "its keys are 'a', 'b'"),
        (lambda p: torch.save({}, p), "it is an empty dict"),
        (lambda p: torch.save([1, 2], p), "it holds a list"),
        (lambda p: torch.save({"format": "other-v2", "model": {}}, p), "its format is 'other-v2'"),
    ],
)
def test_a_file_that_is_not_a_checkpoint_says_what_a_checkpoint_holds(tmp_path, write, found):
    path = tmp_path / "x.pt"
    write(path)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    assert str(err.value) == f"{path} is not a cnnbench checkpoint: {found}; {EXPECTED}"


def test_a_checkpoint_that_fails_to_unpickle_is_damaged_or_truncated(tmp_path):
    good = save_checkpoint(tmp_path, "best", _state(1))
    data = good.read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=rf"^checkpoint {cut} is damaged or truncated \(RuntimeError: "):
        load_checkpoint(cut)
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match=rf"^checkpoint {empty} is damaged or truncated \(the file is empty\)$"):
        load_checkpoint(empty)


def test_rng_state_round_trips_through_weights_only_load(tmp_path):
    import random

    import numpy as np

    state = ckpt_mod.rng_state()
    a = (torch.rand(3), np.random.rand(3), random.random())
    save_checkpoint(tmp_path, "last", {"model": {}, "rng": state})
    ckpt_mod.set_rng_state(load_checkpoint(tmp_path / "last.pt")["rng"])
    b = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]
