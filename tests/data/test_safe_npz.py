"""Pickle-free npz reading: numeric, unicode and object-of-string members load; anything else is refused unrun."""

import io
import os
import pickle
import zipfile

import numpy as np
import pytest

from system.data.safe_npz import NpzFormatError, SafeNpz, UnsafeNpzError


def npy_with_pickle(array, protocol):
    """An .npy member whose payload was written by pickle at `protocol` (as numpy 1.x/2.x files have)."""
    header = "{'descr': '|O', 'fortran_order': False, 'shape': %r, }" % (array.shape,)
    header += " " * (117 - len(header)) + "\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode() + pickle.dumps(array, protocol)


def test_members_round_trip(tmp_path):
    arrays = {
        "reward": np.arange(5, dtype=np.float32),
        "action$forward": np.array([0, 1, 1], np.int64),
        "action$camera": np.arange(6, dtype=np.float32).reshape(3, 2),
        "unicode": np.array(["none", "dirt"]),
        "objects": np.array(["none", "dirt", "none", "crafting_table"], dtype=object),
        "numpy_str_objects": np.array([np.str_("ab"), np.str_("c")], dtype=object),
        "fortran": np.asfortranarray(np.arange(6).reshape(2, 3)),
    }
    np.savez_compressed(tmp_path / "a.npz", **arrays)
    with SafeNpz(tmp_path / "a.npz") as npz:
        assert sorted(npz.keys()) == sorted(arrays) and "reward" in npz
        for key, expected in arrays.items():
            value = npz[key]
            if expected.dtype == object:
                assert value.dtype.kind == "U"   # object arrays of strings come back as unicode arrays
            np.testing.assert_array_equal(value, expected)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_object_arrays_from_every_pickle_protocol(tmp_path, protocol):
    array = np.array(["none", "dirt", "none"] * 3, dtype=object)
    with zipfile.ZipFile(tmp_path / "p.npz", "w") as zf:
        zf.writestr("place.npy", npy_with_pickle(array, protocol))
    np.testing.assert_array_equal(SafeNpz(tmp_path / "p.npz")["place"], array.astype(str))


class Exploit:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def test_malicious_pickles_are_refused_and_never_run(tmp_path):
    marker = tmp_path / "ran"
    cases = {
        "system": np.array([Exploit(marker)], dtype=object),
        "nested": np.array([["fine"], Exploit(marker)], dtype=object),
    }
    for name, array in cases.items():
        np.savez(tmp_path / f"{name}.npz", x=array)
        with pytest.raises(UnsafeNpzError, match="refusing"):
            SafeNpz(tmp_path / f"{name}.npz")["x"]
    # A pickle that is not a numpy array at all, hidden behind an object header.
    with zipfile.ZipFile(tmp_path / "raw.npz", "w") as zf:
        payload = pickle.dumps(Exploit(marker))
        header = "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }"
        header += " " * (117 - len(header)) + "\n"
        zf.writestr("x.npy", b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode() + payload)
    with pytest.raises(UnsafeNpzError):
        SafeNpz(tmp_path / "raw.npz")["x"]
    assert not marker.exists()


def test_objects_that_are_not_plain_values_are_refused(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.array([{"a": 1}], dtype=object))
    with pytest.raises(UnsafeNpzError, match="x:"):
        SafeNpz(tmp_path / "d.npz")["x"]
    np.savez(tmp_path / "m.npz", x=np.array([1, None, "z"], dtype=object))
    assert SafeNpz(tmp_path / "m.npz")["x"].tolist() == [1, None, "z"]


def test_broken_files(tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(NpzFormatError, match="not a readable npz"):
        SafeNpz(tmp_path / "junk.npz")
    with zipfile.ZipFile(tmp_path / "bad.npz", "w") as zf:
        zf.writestr("x.npy", b"not an npy file")
    with pytest.raises(NpzFormatError, match="'x'"):
        SafeNpz(tmp_path / "bad.npz")["x"]
    buffer = io.BytesIO()
    np.save(buffer, np.arange(100))
    with zipfile.ZipFile(tmp_path / "short.npz", "w") as zf:
        zf.writestr("x.npy", buffer.getvalue()[:-40])
    with pytest.raises(NpzFormatError, match="'x'"):
        SafeNpz(tmp_path / "short.npz")["x"]
