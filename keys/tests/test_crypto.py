"""The key format, checked against an independent reading of the contract."""

import ast
import hashlib
import string
import uuid
import zlib
from pathlib import Path
from unittest import mock

import pytest

from keys import crypto

ALPHABET = string.digits + string.ascii_uppercase + string.ascii_lowercase


def contract_checksum(body: str) -> str:
    """The contract's checksum, written out again: CRC32 in base62, most significant digit first, 6 wide."""
    number = zlib.crc32(body.encode("ascii"))
    digits = ""
    while number:
        number, remainder = divmod(number, 62)
        digits = ALPHABET[remainder] + digits
    return digits.rjust(6, "0")


@pytest.mark.parametrize(("kind", "prefix"), [("deployment", "ksd_"), ("global", "ksg_")])
def test_a_generated_key_has_the_typed_prefix_32_base62_characters_and_their_checksum(kind, prefix):
    key = crypto.generate_key(kind)

    assert len(key) == 42
    assert key.startswith(prefix)
    body, check = key[4:36], key[36:]
    assert set(body) <= set(ALPHABET)
    assert check == contract_checksum(body)
    assert crypto.key_kind(key) == kind


def test_the_alphabet_is_digits_then_upper_then_lower_case():
    assert crypto.BASE62_ALPHABET == ALPHABET


@pytest.mark.parametrize(
    ("number", "width", "expected"),
    [(0, 6, "000000"), (9, 1, "9"), (10, 1, "A"), (36, 1, "a"), (61, 1, "z"), (62, 2, "10"), (62**2 + 5, 6, "000105")],
)
def test_base62_is_most_significant_digit_first_and_left_padded_with_zeros(number, width, expected):
    assert crypto.base62_encode(number, width) == expected


def test_the_largest_crc32_fits_in_six_base62_characters():
    assert len(crypto.base62_encode(0xFFFFFFFF, 6)) == 6


def test_the_body_comes_from_secrets():
    with mock.patch("keys.crypto.secrets.choice", return_value="Q") as choice:
        key = crypto.generate_key("global")

    assert choice.call_count == 32
    assert key == "ksg_" + "Q" * 32 + contract_checksum("Q" * 32)


def test_two_keys_are_never_the_same():
    keys = {crypto.generate_key("deployment") for _ in range(1000)}
    assert len(keys) == 1000


def _replace(text: str, index: int) -> str:
    """`text` with the character at `index` swapped for another base62 character."""
    new = "0" if text[index] != "0" else "1"
    return text[:index] + new + text[index + 1 :]


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda k: k[:-1], id="truncated"),
        pytest.param(lambda k: k + "0", id="one-too-long"),
        pytest.param(lambda k: _replace(k, 41), id="checksum-broken"),
        pytest.param(lambda k: _replace(k, 10), id="body-changed"),
        pytest.param(lambda k: "ksx_" + k[4:], id="unknown-prefix"),
        pytest.param(lambda k: "KSD_" + k[4:], id="upper-case-prefix"),
        pytest.param(lambda k: k[:20] + "-" + k[21:], id="outside-the-alphabet"),
        pytest.param(lambda k: k[:20] + "\u00e9" + k[21:], id="non-ascii"),
        pytest.param(lambda k: k[:20] + " " + k[21:], id="space-inside"),
        pytest.param(lambda k: "", id="empty"),
    ],
)
def test_malformed_keys_have_no_kind(mangle):
    assert crypto.key_kind(mangle(crypto.generate_key("deployment"))) is None


def test_the_checksum_covers_the_body_not_the_prefix():
    """Swapping the prefix keeps a valid shape: the table lookup is what refuses it."""
    key = crypto.generate_key("deployment")
    assert crypto.key_kind("ksg_" + key[4:]) == "global"


def test_the_digest_is_the_sha256_hex_of_the_key():
    key = crypto.generate_key("global")
    assert crypto.digest(key) == hashlib.sha256(key.encode()).hexdigest()
    assert len(crypto.digest(key)) == 64


@pytest.mark.parametrize(("kind", "prefix"), [("deployment", "ksd_"), ("global", "ksg_")])
def test_the_mask_is_the_prefix_an_ellipsis_and_the_last_four_characters(kind, prefix):
    key = crypto.generate_key(kind)
    assert crypto.mask(kind, crypto.last4(key)) == f"{prefix}\u2026{key[-4:]}"


def test_crypto_imports_nothing_from_django():
    """Shape and checksum are decided before (and without) any database access."""
    tree = ast.parse(Path(crypto.__file__).read_text())
    imported = [
        alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    ] + [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    assert not [name for name in imported if name.split(".")[0] in {"django", "keys", "rest_framework"}]


# Imported keys: a UUID in its canonical 8-4-4-4-12 form, any case.


def test_a_uuid_in_any_case_is_one_candidate_hashed_in_lowercase():
    key = str(uuid.uuid4())
    lower = crypto.well_formed(key, accept_uuid_keys=True)
    upper = crypto.well_formed(key.upper(), accept_uuid_keys=True)
    assert lower == upper
    assert (lower.format, lower.kind) == ("uuid", None)
    assert lower.digest == hashlib.sha256(key.lower().encode()).hexdigest()


@pytest.mark.parametrize(
    "shape",
    [
        pytest.param(lambda u: u.hex, id="bare hex"),
        pytest.param(lambda u: f"{{{u}}}", id="braces"),
        pytest.param(lambda u: u.urn, id="urn"),
        pytest.param(lambda u: str(u)[:-1], id="short"),
        pytest.param(lambda u: str(u) + "0", id="long"),
        pytest.param(lambda u: str(u).replace("-", "", 1) + "0", id="hyphen moved"),
        pytest.param(lambda u: str(u)[:-1] + "g", id="not hex"),
        pytest.param(lambda u: " " + str(u)[1:], id="space"),
        pytest.param(lambda u: str(u)[:-1] + "\u0660", id="arabic-indic digit"),
    ],
)
def test_other_uuid_spellings_are_not_candidates(shape):
    assert crypto.well_formed(shape(uuid.uuid4()), accept_uuid_keys=True) is None


def test_uuids_are_no_candidates_when_they_are_not_accepted():
    assert crypto.well_formed(str(uuid.uuid4()), accept_uuid_keys=False) is None


@pytest.mark.parametrize("kind", ["deployment", "global"])
def test_a_keyscope_key_is_a_candidate_of_its_kind_either_way(kind):
    key = crypto.generate_key(kind)
    for accept in (True, False):
        assert crypto.well_formed(key, accept_uuid_keys=accept) == crypto.Candidate("keyscope", kind, crypto.digest(key))


def test_an_imported_secret_stores_the_canonical_digest_and_last_four():
    key = str(uuid.uuid4())
    secret = crypto.imported_secret(key.upper())
    assert secret == crypto.Secret(crypto.digest(key), key[-4:], "uuid")
    assert crypto.imported_secret(uuid.uuid4().hex) is None


@pytest.mark.parametrize("kind", ["deployment", "global"])
def test_an_imported_key_masks_as_uuid_whatever_its_kind(kind):
    assert crypto.mask(kind, "9f3e", "uuid") == "uuid\u20269f3e"


def test_the_text_patterns_find_each_shape_of_key_inside_a_line():
    imported, own = str(uuid.uuid4()), crypto.generate_key("global")
    line = f"GET /x?k={imported.upper()}&t={own} id={uuid.uuid4().hex}"
    assert crypto.UUID_KEY_IN_TEXT.findall(line) == [imported.upper()]
    assert crypto.KEYSCOPE_KEY_IN_TEXT.findall(line) == [own]
