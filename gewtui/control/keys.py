"""Ed25519 key files: gew's own key pair, a peer's key pair, public-key lines.

Place in the pipeline: used by pairing (peers' public keys), the server (gew's key) and the
reference client (a peer's private key). All cryptography is the ``cryptography`` package's.

A public key is one line, ``gew-ed25519 <base64 of the raw 32 bytes> <name>``; a private key
is PKCS#8 PEM. A peer is identified on the wire by its key's fingerprint (``peer_id``), so a
client needs nothing but its key file to say who it is.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import re

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from gewtui.errors import EX_DATAERR, GewError

KIND = "gew-ed25519"
NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
SERVER_KEY = "gew.key"


class BadKey(GewError):
    code = EX_DATAERR


def raw_public(pub: Ed25519PublicKey) -> bytes:
    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def peer_id(raw: bytes) -> str:
    """The fingerprint a peer sends as its id: the first 16 bytes of SHA-256, hex."""
    return hashlib.sha256(raw).hexdigest()[:32]


def public_line(pub: Ed25519PublicKey, name: str) -> str:
    return f"{KIND} {base64.b64encode(raw_public(pub)).decode()} {name}\n"


def parse_public_line(text: str, where: str) -> tuple[Ed25519PublicKey, str]:
    """(key, name) from a public-key line; one-line error for anything else."""
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    if len(lines) != 1:
        raise BadKey(f"{where}: expected one line '{KIND} BASE64 NAME'")
    parts = lines[0].split()
    if len(parts) not in (2, 3) or parts[0] != KIND:
        raise BadKey(f"{where}: not a {KIND} public key line")
    try:
        raw = base64.b64decode(parts[1], validate=True)
    except (binascii.Error, ValueError):
        raise BadKey(f"{where}: the key is not base64") from None
    if len(raw) != 32:
        raise BadKey(f"{where}: an Ed25519 public key is 32 bytes, this one is {len(raw)}")
    name = parts[2] if len(parts) == 3 else ""
    if name and not NAME_RE.fullmatch(name):
        raise BadKey(f"{where}: bad name {ascii(name)[:70]} (letters, digits, _ and -, at most 64)")
    return Ed25519PublicKey.from_public_bytes(raw), name


def private_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def parse_private(data: bytes, where: str) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise BadKey(f"{where}: not an unencrypted PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise BadKey(f"{where}: not an Ed25519 private key")
    return key


def server_key(etc_fd: int, where: str) -> Ed25519PrivateKey:
    """gew's own key pair, made once (0600, exclusive create) and read after that."""
    from gewtui.control import privdir

    try:
        return parse_private(privdir.read_private(etc_fd, SERVER_KEY, where), f"{where}/{SERVER_KEY}")
    except FileNotFoundError:
        pass
    key = Ed25519PrivateKey.generate()
    try:
        privdir.write_new(etc_fd, SERVER_KEY, private_pem(key))
    except FileExistsError:        # made by another gew at the same moment: use that one
        return parse_private(privdir.read_private(etc_fd, SERVER_KEY, where), f"{where}/{SERVER_KEY}")
    return key
