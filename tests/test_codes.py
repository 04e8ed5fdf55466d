import subprocess
import sys

import pytest
import torch

from segue_cli.errors import InputError
from segue_cli.nn.codes import code_to_signs, folder_code, identity_code, label_code, random_codes


def test_label_code_is_binary_msb_first():
    signs = code_to_signs(5)
    assert signs.shape == (1, 16)
    assert signs[0, -3:].tolist() == [1.0, -1.0, 1.0]
    assert (signs[0, :-3] == -1).all()


def test_identity_code_is_documented_hash_and_stable_across_processes():
    import hashlib

    expected = int.from_bytes(hashlib.sha256(b"segue-identity-v1:alice").digest()[:4], "big") % 65536
    assert identity_code("alice") == expected
    assert identity_code("  alice ") == expected
    other = subprocess.run(
        [sys.executable, "-c", "from segue_cli.nn.codes import identity_code; print(identity_code('alice'))"],
        capture_output=True, text=True, check=True, env={"PYTHONHASHSEED": "123", "PATH": ""}, cwd=".",
    )
    assert int(other.stdout) == expected


def test_unicode_names_are_normalised():
    assert identity_code("Zo\u00eb") == identity_code("Zoe\u0308")
    assert identity_code("alice") != identity_code("bob")


def test_folder_code_uses_labels_for_integers_and_hash_otherwise():
    assert folder_code("7") == 7
    assert folder_code("alice") == identity_code("alice")


@pytest.mark.parametrize("bad", [-1, 65536, 1.5, True])
def test_bad_labels_are_refused(bad):
    with pytest.raises(InputError):
        label_code(bad)


def test_random_codes_are_distinct_and_seeded():
    a = random_codes(50, 16, torch.Generator().manual_seed(1))
    b = random_codes(50, 16, torch.Generator().manual_seed(1))
    assert a == b and len(set(a)) == 50 and all(0 <= c < 65536 for c in a)


def test_a_decoy_code_space_reduces_names_and_labels_into_its_decoys():
    from segue_cli.nn.codes import CodeSpace

    space = CodeSpace(16, 7)
    names = [f"person-{i}" for i in range(50)]
    assert [space.identity(n) for n in names] == [identity_code(n) % 7 for n in names]
    assert {space.identity(n) for n in names} == set(range(7))  # every decoy is reached
    assert space.label(9) == 2 and space.folder("9") == 2 and space.folder("ada") == identity_code("ada") % 7
    assert space.of_decoys() == " of 7 decoys" and CodeSpace().of_decoys() == ""
    assert CodeSpace().identity("ada") == identity_code("ada")  # the full space changes nothing
