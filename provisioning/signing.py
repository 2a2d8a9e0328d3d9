"""The deployment's OTA signing key: RSA-3072, whose private half lives only in the deployment
folder and whose public modulus (the *anchor*) every bench holds.

A bench verifies a bundle's manifest with ``s ** 65537 mod n`` and an RSASSA-PKCS1-v1_5
SHA-256 padding check (``firmware/bench/ota.py``); nothing a bench or a gateway holds can
make a signature (../shared/DESIGN.md, principle 7). ``docs/firmware.md`` ("Update trust") says
why RSA and not per-bench HMAC keys or Ed25519, with the verify time and heap measured in the VM.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

KEY_BITS = 3072  # 128-bit security, past 2030 (NIST SP 800-57); the bench takes 2048..4096
EXPONENT = 65537  # the bench's verify is fixed to it: 16 squarings and one product


class SigningKeyError(Exception):
    """A signing key file is missing, unreadable or not an RSA key the benches take."""


def generate() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=EXPONENT, key_size=KEY_BITS)


def to_pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    """The private key as unencrypted PKCS#8 PEM (this OTA key, and pki's EC keys too)."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def load(path: Path) -> rsa.RSAPrivateKey:
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except FileNotFoundError:
        raise SigningKeyError(f"{path} not found") from None
    except ValueError:
        raise SigningKeyError(f"{path} is not a PEM private key") from None
    if not isinstance(key, rsa.RSAPrivateKey) or key.public_key().public_numbers().e != EXPONENT:
        raise SigningKeyError(f"{path} is not an RSA key with exponent {EXPONENT}")
    if not 2048 <= key.key_size <= 4096:
        raise SigningKeyError(f"{path}: an RSA key of {key.key_size} bits (benches take 2048-4096)")
    return key


def anchor(key: rsa.RSAPrivateKey | rsa.RSAPublicKey) -> str:
    """The public modulus as the bench keeps it: lowercase hex, whole bytes, no leading zero."""
    pub = key.public_key() if isinstance(key, rsa.RSAPrivateKey) else key
    n = pub.public_numbers().n
    return n.to_bytes((n.bit_length() + 7) // 8, "big").hex()


def key_id(anchor_hex: str) -> str:
    """The short name a bench gives an anchor in its messages (``bench.ota.key_id``)."""
    return hashlib.sha256(anchor_hex.encode()).hexdigest()[:8]


def sign(key: rsa.RSAPrivateKey, message: bytes) -> str:
    """RSASSA-PKCS1-v1_5 with SHA-256 over ``message``, as hex of the modulus's length."""
    sig = key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    return sig.hex()


def verify(anchor_hex: str, message: bytes, sig_hex: str) -> bool:
    """What a bench checks, done on the host (load_bundle, tests)."""
    try:
        n = int(anchor_hex, 16)
        pub = rsa.RSAPublicNumbers(EXPONENT, n).public_key()
        pub.verify(bytes.fromhex(sig_hex), message, padding.PKCS1v15(), hashes.SHA256())
    except Exception:  # noqa: BLE001 - any malformed input is simply not a valid signature
        return False
    return True
