"""Pairing: one-time tokens and the paired peers' public keys under /etc/gewyvern.

Place in the pipeline: ``gew pair new|accept|list|revoke`` write it; the request check
(gewtui.control.signing) reads it. Layout (every directory root-owned 0700, every file 0600,
all opened through gewtui.control.privdir):

    /etc/gewyvern/gew.key                   gew's own Ed25519 key (PKCS#8 PEM)
    /etc/gewyvern/pairing/<sha256(token)>   a token waiting for its peer: its expiry
    /etc/gewyvern/peers/<name>.pub          a paired peer: its public-key line

Only a token's hash is stored, so reading the directory does not reveal a usable token. A
token is consumed by the first accept that presents it, expired or not.
"""
from __future__ import annotations

import hashlib
import json
import os
import secrets
import time
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gewtui.control import keys, privdir
from gewtui.errors import EX_NOINPUT, EX_NOPERM, GewError, UsageError

PAIRING = "pairing"
PEERS = "peers"
MAX_TTL_S = 24 * 3600
_MAX_PEERS = 1000


@dataclass(frozen=True)
class Peer:
    name: str
    peer_id: str
    key: Ed25519PublicKey
    paired_unix: int


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def parse_ttl(text: str) -> float:
    s = text.strip().lower()
    mult = {"s": 1, "m": 60, "h": 3600}.get(s[-1:])
    try:
        v = float(s[:-1]) * mult if mult else float(s)
    except ValueError:
        raise UsageError(f"bad --ttl {ascii(text)[:40]}: use seconds or 90s, 10m, 1h") from None
    if not 1 <= v <= MAX_TTL_S:
        raise UsageError("--ttl must be between 1 s and 24 h")
    return v


class PeerStore:
    """The pairing tree of one /etc/gewyvern. Every call opens what it reads afresh, so a
    revoke takes effect on the next request of a running session."""

    def __init__(self, root: str | None = None, *, create: bool = True):
        self.root = root or privdir.etc_dir()
        self.create = create

    def _open(self, sub: str | None) -> int:
        fd = privdir.open_private_dir(self.root, create=self.create)
        if sub is None:
            return fd
        try:
            return privdir.open_subdir(fd, sub, self.root, create=self.create)
        finally:
            os.close(fd)

    # -- gew's own key -------------------------------------------------------------------------
    def server_key(self):
        fd = self._open(None)
        try:
            return keys.server_key(fd, self.root)
        finally:
            os.close(fd)

    # -- tokens ----------------------------------------------------------------------------------
    def new_token(self, ttl_s: float) -> tuple[str, float]:
        token = secrets.token_hex(16)        # hex: never starts with '-' on a command line
        expires = time.time() + ttl_s
        fd = self._open(PAIRING)
        try:
            self._prune(fd)
            privdir.write_new(fd, _hash(token), json.dumps({"expires_unix": expires}).encode())
        finally:
            os.close(fd)
        return token, expires

    def _prune(self, fd: int) -> None:
        now = time.time()
        for n in privdir.names(fd):
            try:
                exp = json.loads(privdir.read_private(fd, n, self.root, 256)).get("expires_unix", 0)
            except (ValueError, AttributeError, OSError, GewError):
                continue      # not ours to judge: left alone
            if isinstance(exp, (int, float)) and exp < now:
                os.unlink(n, dir_fd=fd)

    def _consume(self, token: str) -> None:
        name = _hash(token)
        fd = self._open(PAIRING)
        try:
            try:
                data = privdir.read_private(fd, name, f"{self.root}/{PAIRING}", 256)
            except FileNotFoundError:
                raise GewError("unknown or already used pairing token", EX_NOPERM) from None
            os.unlink(name, dir_fd=fd)          # one use, whatever follows
        finally:
            os.close(fd)
        try:
            exp = float(json.loads(data)["expires_unix"])
        except (ValueError, KeyError, TypeError):
            raise GewError("pairing token record is damaged; make a new token", EX_NOPERM) from None
        if exp < time.time():
            raise GewError("pairing token expired; make a new one with gew pair new", EX_NOPERM)

    # -- peers -----------------------------------------------------------------------------------
    def accept(self, token: str, public_line: str, name: str = "", where: str = "peer key") -> Peer:
        key, key_name = keys.parse_public_line(public_line, where)
        name = name or key_name
        if not name:
            raise UsageError("the peer key names no peer: give --name NAME")
        if not keys.NAME_RE.fullmatch(name):
            raise UsageError(f"bad peer name {ascii(name)[:70]} (letters, digits, _ and -, at most 64)")
        pid = keys.peer_id(keys.raw_public(key))
        for p in self.peers():
            if p.name == name:
                raise UsageError(f"a peer named {name} is paired already; revoke it first")
            if p.peer_id == pid:
                raise UsageError(f"this key is paired already as {p.name}")
        self._consume(token)
        fd = self._open(PEERS)
        try:
            try:
                privdir.write_new(fd, f"{name}.pub", keys.public_line(key, name).encode())
            except FileExistsError:
                raise UsageError(f"a peer named {name} is paired already; revoke it first") from None
        finally:
            os.close(fd)
        return Peer(name, pid, key, int(time.time()))

    def peers(self) -> list[Peer]:
        fd = self._open(PEERS)
        out = []
        try:
            for n in privdir.names(fd)[:_MAX_PEERS]:
                if not n.endswith(".pub") or not keys.NAME_RE.fullmatch(n[:-4]):
                    continue
                try:
                    data = privdir.read_private(fd, n, f"{self.root}/{PEERS}", 1024)
                    key, _ = keys.parse_public_line(data.decode("ascii", "replace"), n)
                    st = os.stat(n, dir_fd=fd, follow_symlinks=False)
                except (GewError, OSError):
                    continue          # an unusable entry pairs nobody
                out.append(Peer(n[:-4], keys.peer_id(keys.raw_public(key)), key, int(st.st_mtime)))
        finally:
            os.close(fd)
        return out

    def lookup(self, peer_id: str) -> Peer | None:
        return next((p for p in self.peers() if p.peer_id == peer_id), None)

    def revoke(self, name: str) -> None:
        if not keys.NAME_RE.fullmatch(name):
            raise UsageError(f"bad peer name {ascii(name)[:70]}")
        fd = self._open(PEERS)
        try:
            os.unlink(f"{name}.pub", dir_fd=fd)
        except FileNotFoundError:
            raise GewError(f"no paired peer named {name}", EX_NOINPUT) from None
        finally:
            os.close(fd)
